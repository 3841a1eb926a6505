using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>An element-wise function of one operand: the scalar definition and its 256/512-bit forms.</summary>
internal interface IUnaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    T Invoke(T x);
    Vector256<T> Invoke(Vector256<T> x);
    Vector512<T> Invoke(Vector512<T> x);
}

/// <summary>Two element-wise functions of one operand from one evaluation (a function and its derivative): the first returned, the second out.</summary>
internal interface IUnaryPairOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    T Invoke(T x, out T second);
    Vector256<T> Invoke(Vector256<T> x, out Vector256<T> second);
    Vector512<T> Invoke(Vector512<T> x, out Vector512<T> second);
}

/// <summary>An element-wise function of two operands.</summary>
internal interface IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    T Invoke(T a, T b);
    Vector256<T> Invoke(Vector256<T> a, Vector256<T> b);
    Vector512<T> Invoke(Vector512<T> a, Vector512<T> b);
}

/// <summary>An element-wise function of three operands.</summary>
internal interface ITernaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    T Invoke(T a, T b, T c);
    Vector256<T> Invoke(Vector256<T> a, Vector256<T> b, Vector256<T> c);
    Vector512<T> Invoke(Vector512<T> a, Vector512<T> b, Vector512<T> c);
}

/// <summary>
/// The three loops every element-wise kernel runs through: whole 512-bit vectors (on
/// <see cref="InstructionSet.Avx512"/>), then whole 256-bit vectors (on Avx2 and above, which also
/// takes the part of an AVX-512 run shorter than one 512-bit vector), then a scalar tail. Each
/// element is read before its own result is written and no element is computed twice, so the
/// destination may be the same span as an input (in place).
/// </summary>
internal static class ElementwiseLoops
{
    public static void Unary<T, TOp>(string op, ReadOnlySpan<T> x, Span<T> y, TOp f, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOperator<T>
    {
        int n = x.Length;
        CheckDestination(op, n, y.Length);
        ref T xr = ref MemoryMarshal.GetReference(x);
        ref T yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (isa == InstructionSet.Avx512)
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
                f.Invoke(Vector512.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        if (isa >= InstructionSet.Avx2)
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                f.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        for (; i < n; i++)
            Unsafe.Add(ref yr, i) = f.Invoke(Unsafe.Add(ref xr, i));
    }

    /// <summary>The unary loop with two destinations: <c>y = f(x)</c> and <c>z</c> = f's second output.</summary>
    public static void UnaryPair<T, TOp>(string op, ReadOnlySpan<T> x, Span<T> y, Span<T> z, TOp f, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryPairOperator<T>
    {
        int n = x.Length;
        CheckDestination(op, n, y.Length);
        CheckDestination(op, n, z.Length);
        ref T xr = ref MemoryMarshal.GetReference(x);
        ref T yr = ref MemoryMarshal.GetReference(y);
        ref T zr = ref MemoryMarshal.GetReference(z);
        int i = 0;
        if (isa == InstructionSet.Avx512)
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
            {
                f.Invoke(Vector512.LoadUnsafe(ref xr, (nuint)i), out var second).StoreUnsafe(ref yr, (nuint)i);
                second.StoreUnsafe(ref zr, (nuint)i);
            }
        if (isa >= InstructionSet.Avx2)
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                f.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i), out var second).StoreUnsafe(ref yr, (nuint)i);
                second.StoreUnsafe(ref zr, (nuint)i);
            }
        for (; i < n; i++)
            Unsafe.Add(ref yr, i) = f.Invoke(Unsafe.Add(ref xr, i), out Unsafe.Add(ref zr, i));
    }

    public static void Binary<T, TOp>(string op, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y, TOp f, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOperator<T>
    {
        int n = a.Length;
        CheckOperand(op, "second operand", n, b.Length);
        CheckDestination(op, n, y.Length);
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T br = ref MemoryMarshal.GetReference(b);
        ref T yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (isa == InstructionSet.Avx512)
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
                f.Invoke(Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        if (isa >= InstructionSet.Avx2)
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                f.Invoke(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        for (; i < n; i++)
            Unsafe.Add(ref yr, i) = f.Invoke(Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i));
    }

    public static void Ternary<T, TOp>(string op, ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> c, Span<T> y, TOp f, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, ITernaryOperator<T>
    {
        int n = a.Length;
        CheckOperand(op, "second operand", n, b.Length);
        CheckOperand(op, "third operand", n, c.Length);
        CheckDestination(op, n, y.Length);
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T br = ref MemoryMarshal.GetReference(b);
        ref T cr = ref MemoryMarshal.GetReference(c);
        ref T yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (isa == InstructionSet.Avx512)
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
                f.Invoke(Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i), Vector512.LoadUnsafe(ref cr, (nuint)i))
                    .StoreUnsafe(ref yr, (nuint)i);
        if (isa >= InstructionSet.Avx2)
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                f.Invoke(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i), Vector256.LoadUnsafe(ref cr, (nuint)i))
                    .StoreUnsafe(ref yr, (nuint)i);
        for (; i < n; i++)
            Unsafe.Add(ref yr, i) = f.Invoke(Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i), Unsafe.Add(ref cr, i));
    }

    private static void CheckOperand(string op, string name, int n, int length)
    {
        if (length != n) throw new ArgumentException($"{op}: the {name} has {length} elements, the first has {n}; pass spans of equal length.");
    }

    private static void CheckDestination(string op, int n, int length)
    {
        if (length < n) throw new ArgumentException($"{op}: destination has {length} elements, needs {n}.");
    }
}

/// <summary>
/// Piecewise element-wise kernels and their backward rules: abs, sign, clamp, where. Span in, span
/// out, destination last; vectorised through <see cref="ElementwiseLoops"/>. The subgradients at
/// the kinks are PyTorch's.
/// </summary>
public static class ElementwiseKernels
{
    /// <summary><c>dx = sign(x)·dy</c>, and exactly 0 at x = ±0 (PyTorch's subgradient of |x|). NaN x gives NaN.</summary>
    public static void AbsBackward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        AbsBackward(x, dy, dx, KernelIsa.Best);

    internal static void AbsBackward<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dx, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T> =>
        ElementwiseLoops.Binary("abs backward", x, dy, dx, new AbsBackwardOp<T>(), isa);

    /// <summary><c>y = sign(x)</c>: 1 for x &gt; 0, −1 for x &lt; 0, x itself for ±0 and NaN (so NaN propagates).</summary>
    public static void Sign<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> => Sign(x, y, KernelIsa.Best);

    internal static void Sign<T>(ReadOnlySpan<T> x, Span<T> y, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T> =>
        ElementwiseLoops.Unary("sign", x, y, new SignOp<T>(), isa);

    /// <summary>
    /// Clamp backward: <c>dx = dy</c> where <c>min ≤ x ≤ max</c> (boundaries included, as PyTorch), else 0;
    /// NaN x gives 0.
    /// </summary>
    public static void ClampBackward<T>(ReadOnlySpan<T> x, T min, T max, ReadOnlySpan<T> dy, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        ClampBackward(x, min, max, dy, dx, KernelIsa.Best);

    internal static void ClampBackward<T>(ReadOnlySpan<T> x, T min, T max, ReadOnlySpan<T> dy, Span<T> dx, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T> =>
        ElementwiseLoops.Binary("clamp backward", x, dy, dx, new ClampBackwardOp<T>(min, max), isa);

    /// <summary><c>y = cond ≠ 0 ? a : b</c> element-wise (a NaN condition counts as true, since NaN ≠ 0).</summary>
    public static void Where<T>(ReadOnlySpan<T> cond, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Where(cond, a, b, y, KernelIsa.Best);

    internal static void Where<T>(ReadOnlySpan<T> cond, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T> =>
        ElementwiseLoops.Ternary("where", cond, a, b, y, new WhereOp<T>(), isa);

    private readonly struct SignOp<T> : IUnaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T x) => x > T.Zero ? T.One : x < T.Zero ? -T.One : x;
        public Vector256<T> Invoke(Vector256<T> x) =>
            Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<T>.Zero), Vector256<T>.One,
                Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<T>.Zero), -Vector256<T>.One, x));
        public Vector512<T> Invoke(Vector512<T> x) =>
            Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512<T>.Zero), Vector512<T>.One,
                Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<T>.Zero), -Vector512<T>.One, x));
    }

    private readonly struct AbsBackwardOp<T> : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T x, T dy) => x > T.Zero ? dy : x < T.Zero ? -dy : x == T.Zero ? T.Zero : x;
        public Vector256<T> Invoke(Vector256<T> x, Vector256<T> dy) =>
            Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<T>.Zero), dy,
                Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<T>.Zero), -dy,
                    Vector256.ConditionalSelect(Vector256.Equals(x, Vector256<T>.Zero), Vector256<T>.Zero, x)));
        public Vector512<T> Invoke(Vector512<T> x, Vector512<T> dy) =>
            Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512<T>.Zero), dy,
                Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<T>.Zero), -dy,
                    Vector512.ConditionalSelect(Vector512.Equals(x, Vector512<T>.Zero), Vector512<T>.Zero, x)));
    }

    private readonly struct ClampBackwardOp<T>(T min, T max) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T x, T dy) => x >= min && x <= max ? dy : T.Zero;
        public Vector256<T> Invoke(Vector256<T> x, Vector256<T> dy) =>
            dy & Vector256.GreaterThanOrEqual(x, Vector256.Create(min)) & Vector256.LessThanOrEqual(x, Vector256.Create(max));
        public Vector512<T> Invoke(Vector512<T> x, Vector512<T> dy) =>
            dy & Vector512.GreaterThanOrEqual(x, Vector512.Create(min)) & Vector512.LessThanOrEqual(x, Vector512.Create(max));
    }

    private readonly struct WhereOp<T> : ITernaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T cond, T a, T b) => cond != T.Zero ? a : b;
        public Vector256<T> Invoke(Vector256<T> cond, Vector256<T> a, Vector256<T> b) =>
            Vector256.ConditionalSelect(Vector256.Equals(cond, Vector256<T>.Zero), b, a);
        public Vector512<T> Invoke(Vector512<T> cond, Vector512<T> a, Vector512<T> b) =>
            Vector512.ConditionalSelect(Vector512.Equals(cond, Vector512<T>.Zero), b, a);
    }
}

using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>
/// The vector operations a kernel body uses, for one width: <see cref="W256{T}"/> (<see cref="Vector256{T}"/>) and
/// <see cref="W512{T}"/> (<see cref="Vector512{T}"/>). A body written once over <see cref="V{TV, TW, T}"/> is compiled
/// for each width, as TensorPrimitives does with the runtime's ISimdVector (internal in .NET 10); every member is a
/// static call on a struct type argument, which the JIT inlines: the code is the hand-written one's.
/// </summary>
internal interface IWidth<TV, T> where TV : struct where T : unmanaged, IFloatingPointIeee754<T>
{
    static abstract TV Create(T x);
    static abstract TV Add(TV a, TV b);
    static abstract TV Subtract(TV a, TV b);
    static abstract TV Multiply(TV a, TV b);
    static abstract TV Divide(TV a, TV b);
    static abstract TV Negate(TV a);
    static abstract TV Abs(TV a);
    static abstract TV CopySign(TV magnitude, TV sign);
    static abstract TV Equals(TV a, TV b);
    static abstract TV ConditionalSelect(TV mask, TV a, TV b);

    /// <summary>eˣ as <see cref="VMath.Exp{T}(Vector256{T})"/> (float32 by Cephes expf).</summary>
    static abstract TV Exp(TV x);
    static abstract TV Log(TV x);
    static abstract TV Load(ReadOnlySpan<T> s, int at);
    static abstract void Store(TV v, Span<T> s, int at);
}

/// <summary>256-bit vectors.</summary>
internal readonly struct W256<T> : IWidth<Vector256<T>, T> where T : unmanaged, IFloatingPointIeee754<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Create(T x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Add(Vector256<T> a, Vector256<T> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Subtract(Vector256<T> a, Vector256<T> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Multiply(Vector256<T> a, Vector256<T> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Divide(Vector256<T> a, Vector256<T> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Negate(Vector256<T> a) => -a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Abs(Vector256<T> a) => Vector256.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> CopySign(Vector256<T> magnitude, Vector256<T> sign) => Vector256.CopySign(magnitude, sign);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Equals(Vector256<T> a, Vector256<T> b) => Vector256.Equals(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> ConditionalSelect(Vector256<T> mask, Vector256<T> a, Vector256<T> b) => Vector256.ConditionalSelect(mask, a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Exp(Vector256<T> x) => VMath.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Log(Vector256<T> x) => VMath.Log(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Load(ReadOnlySpan<T> s, int at) => Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(s), (nuint)at);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<T> v, Span<T> s, int at) => v.StoreUnsafe(ref MemoryMarshal.GetReference(s), (nuint)at);
}

/// <summary>512-bit vectors.</summary>
internal readonly struct W512<T> : IWidth<Vector512<T>, T> where T : unmanaged, IFloatingPointIeee754<T>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Create(T x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Add(Vector512<T> a, Vector512<T> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Subtract(Vector512<T> a, Vector512<T> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Multiply(Vector512<T> a, Vector512<T> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Divide(Vector512<T> a, Vector512<T> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Negate(Vector512<T> a) => -a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Abs(Vector512<T> a) => Vector512.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> CopySign(Vector512<T> magnitude, Vector512<T> sign) => Vector512.CopySign(magnitude, sign);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Equals(Vector512<T> a, Vector512<T> b) => Vector512.Equals(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> ConditionalSelect(Vector512<T> mask, Vector512<T> a, Vector512<T> b) => Vector512.ConditionalSelect(mask, a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Exp(Vector512<T> x) => VMath.Exp(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Log(Vector512<T> x) => VMath.Log(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Load(ReadOnlySpan<T> s, int at) => Vector512.LoadUnsafe(ref MemoryMarshal.GetReference(s), (nuint)at);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<T> v, Span<T> s, int at) => v.StoreUnsafe(ref MemoryMarshal.GetReference(s), (nuint)at);
}

/// <summary>
/// A vector of width <typeparamref name="TW"/> with the arithmetic operators, so that a body written once reads as the
/// formula (<c>dh * o * (one - tc)</c>); it holds the vector itself and adds nothing at run time.
/// </summary>
internal readonly struct V<TV, TW, T>(TV value) where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public readonly TV Value = value;

    public static V<TV, TW, T> One
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] get => new(TW.Create(T.One));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> Of(T x) => new(TW.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> Load(ReadOnlySpan<T> s, int at) => new(TW.Load(s, at));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(Span<T> s, int at) => TW.Store(Value, s, at);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> operator +(V<TV, TW, T> a, V<TV, TW, T> b) => new(TW.Add(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> operator -(V<TV, TW, T> a, V<TV, TW, T> b) => new(TW.Subtract(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> operator *(V<TV, TW, T> a, V<TV, TW, T> b) => new(TW.Multiply(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> operator /(V<TV, TW, T> a, V<TV, TW, T> b) => new(TW.Divide(a.Value, b.Value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> operator *(V<TV, TW, T> a, T b) => new(TW.Multiply(a.Value, TW.Create(b)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V<TV, TW, T> operator -(V<TV, TW, T> a) => new(TW.Negate(a.Value));
}

/// <summary>The functions of <see cref="V{TV, TW, T}"/> (type arguments inferred from the operands).</summary>
internal static class V
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> Abs<TV, TW, T>(V<TV, TW, T> a)
        where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> => new(TW.Abs(a.Value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> CopySign<TV, TW, T>(V<TV, TW, T> magnitude, V<TV, TW, T> sign)
        where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> => new(TW.CopySign(magnitude.Value, sign.Value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> Exp<TV, TW, T>(V<TV, TW, T> x)
        where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> => new(TW.Exp(x.Value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> Log<TV, TW, T>(V<TV, TW, T> x)
        where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> => new(TW.Log(x.Value));

    /// <summary>All-ones lanes where <paramref name="a"/> equals <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> Equal<TV, TW, T>(V<TV, TW, T> a, V<TV, TW, T> b)
        where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> => new(TW.Equals(a.Value, b.Value));

    /// <summary>Lanes of <paramref name="a"/> where <paramref name="mask"/> is set, of <paramref name="b"/> elsewhere.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> Select<TV, TW, T>(V<TV, TW, T> mask, V<TV, TW, T> a, V<TV, TW, T> b)
        where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> => new(TW.ConditionalSelect(mask.Value, a.Value, b.Value));

}

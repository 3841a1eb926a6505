using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace GradFlow.Tensors;

/// <summary>
/// Receives, during the backward pass of one recurrent layer op (<see cref="Tensor.Rnn"/>,
/// <see cref="Tensor.Lstm"/>, <see cref="Tensor.Gru"/>), the size of the gradient reaching the hidden
/// state of every step: for t = 0..T−1, <c>Σ (dL/dh_t)²</c> over the [B, H] elements and the number of
/// non-finite elements, where dL/dh_t is the total gradient of h_t (from the output at step t and from
/// step t + 1), the quantity backpropagation through time multiplies by the recurrent Jacobian.
/// </summary>
/// <remarks>
/// Pass one to the op (its last, optional argument); its backward rule fills it as it walks the steps
/// in reverse, with one SIMD sum of squares per step (<see cref="TensorPrimitives.SumOfSquares{T}(ReadOnlySpan{T})"/>;
/// accumulated in double, and recomputed element by element in double only when the float sum
/// overflows or meets a non-finite value). The op's numerics do not change. A probe is reusable: its
/// arrays grow to the longest sequence seen and are kept, so a steady stream of samples allocates
/// nothing. Without a probe (null, the default) the ops do no extra work.
/// </remarks>
/// <example><code>
/// var probe = new RecurrentGradientProbe();
/// var (output, hn) = Tensor.Rnn(x, h0, wIh, wHh, bIh, bHh, RnnNonlinearity.Tanh, probe);
/// output.Sum().Backward();
/// double rmsAtStart = probe.Rms(0);   // RMS of dL/dh_0 (the first step's hidden state)
/// </code></example>
public sealed class RecurrentGradientProbe
{
    private double[] _sumSq = [];
    private long[] _nonFinite = [];

    /// <summary>T, the steps recorded by the last backward pass (0 before any, or after <see cref="Reset"/>).</summary>
    public int Steps { get; private set; }

    /// <summary>B·H, the elements of dL/dh_t per step in the last backward pass.</summary>
    public int ElementsPerStep { get; private set; }

    /// <summary>Whether a backward pass has filled the probe since it was created or <see cref="Reset"/>.</summary>
    public bool Recorded => Steps > 0;

    /// <summary><c>Σ_{b,h} (dL/dh_t)²</c> for t = 0..<see cref="Steps"/>−1 (+∞ or NaN when the gradient is not finite).</summary>
    public ReadOnlySpan<double> SumOfSquares => _sumSq.AsSpan(0, Steps);

    /// <summary>Non-finite elements of dL/dh_t for t = 0..<see cref="Steps"/>−1.</summary>
    public ReadOnlySpan<long> NonFinite => _nonFinite.AsSpan(0, Steps);

    /// <summary>RMS of dL/dh_t: <c>√(SumOfSquares[t] / ElementsPerStep)</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">when t is outside 0..<see cref="Steps"/>−1.</exception>
    public double Rms(int t)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(t);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(t, Steps);
        return Math.Sqrt(_sumSq[t] / ElementsPerStep);
    }

    /// <summary>Forgets the last recording (keeps the arrays).</summary>
    public void Reset()
    {
        Steps = 0;
        ElementsPerStep = 0;
    }

    /// <summary>Called by the op's backward before its loop: sizes the arrays for <paramref name="steps"/> steps of <paramref name="elements"/> values.</summary>
    internal void Begin(int steps, int elements)
    {
        if (_sumSq.Length < steps)
        {
            _sumSq = new double[steps];
            _nonFinite = new long[steps];
        }
        Steps = steps;
        ElementsPerStep = elements;
    }

    /// <summary>Records dL/dh_t (<paramref name="dh"/>, [B·H]) for step <paramref name="t"/>.</summary>
    internal void Record<T>(int t, ReadOnlySpan<T> dh) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sumSq = typeof(T) == typeof(double)
            ? TensorPrimitives.SumOfSquares(MemoryMarshal.Cast<T, double>(dh))
            : TensorPrimitives.SumOfSquares(MemoryMarshal.Cast<T, float>(dh));
        long bad = 0;
        if (!double.IsFinite(sumSq))
        {
            // a non-finite element, or a float sum past float's range: redo it in double, counting
            sumSq = 0;
            foreach (var v in dh)
            {
                double d = double.CreateTruncating(v);
                if (!double.IsFinite(d)) bad++;
                sumSq += d * d;
            }
        }
        _sumSq[t] = sumSq;
        _nonFinite[t] = bad;
    }
}

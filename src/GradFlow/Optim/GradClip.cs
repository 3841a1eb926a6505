using System.Globalization;
using System.Numerics;
using GradFlow.Nn;
using GradFlow.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace GradFlow.Optim;

/// <summary>
/// Gradient clipping, the remedy for exploding gradients: rescale (<see cref="ClipGradNorm"/>),
/// clamp (<see cref="ClipGradValue"/>) or adaptively clip per unit (<see cref="ClipGradAdaptive"/>)
/// the gradients in place, between backward and the optimiser step. Parameters without a gradient
/// are skipped.
/// </summary>
public static class GradClip
{
    /// <summary>
    /// Rescales all gradients together so that their total norm is at most <paramref name="maxNorm"/>
    /// (PyTorch's <c>clip_grad_norm_</c>; Pascanu, Mikolov &amp; Bengio, 2013).
    /// </summary>
    /// <remarks>
    /// The total norm is the p-norm of all gradient elements taken as one vector,
    /// <c>‖g‖_p = (Σ|g_i|^p)^(1/p)</c>, or <c>max|g_i|</c> for p = ∞, accumulated in double in
    /// parameter order. Each gradient is multiplied by <c>c = maxNorm / (‖g‖ + 1e-6)</c> only when
    /// c &lt; 1. Unlike PyTorch, a NaN total norm leaves the gradients unchanged (PyTorch multiplies
    /// them by NaN); an infinite one multiplies them by 0 (as PyTorch).
    /// </remarks>
    /// <param name="parameters">The parameters whose gradients are clipped.</param>
    /// <param name="maxNorm">Largest allowed total norm (≥ 0).</param>
    /// <param name="normType">p &gt; 0, or <see cref="double.PositiveInfinity"/> for the max norm.</param>
    /// <param name="errorIfNonfinite">Throw when the total norm is NaN or infinite instead of clipping.</param>
    /// <returns>The total norm before clipping.</returns>
    /// <exception cref="ArgumentException">for a negative maxNorm or p ≤ 0.</exception>
    /// <exception cref="InvalidOperationException">with <paramref name="errorIfNonfinite"/>, naming the non-finite norm.</exception>
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm, double normType = 2, bool errorIfNonfinite = false)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(maxNorm >= 0))
            throw new ArgumentException($"ClipGradNorm: maxNorm must be ≥ 0; got {maxNorm}.", nameof(maxNorm));
        if (!(normType > 0))
            throw new ArgumentException($"ClipGradNorm: normType must be > 0 (or +∞); got {normType}.", nameof(normType));
        var grads = parameters.Select(p => p.Grad).OfType<Tensor>().ToArray();
        double total = 0;
        foreach (var g in grads)
            total = g.Is<float>() ? Accumulate<float>(g.Span<float>(), normType, total) : Accumulate<double>(g.Span<double>(), normType, total);
        if (!double.IsPositiveInfinity(normType))
            total = normType == 2 ? Math.Sqrt(total) : normType == 1 ? total : Math.Pow(total, 1 / normType);
        if (errorIfNonfinite && !double.IsFinite(total))
            throw new InvalidOperationException(
                string.Create(CultureInfo.InvariantCulture, $"ClipGradNorm: the total {normType}-norm of the gradients of {grads.Length} parameters is {total}, so they cannot be clipped. ") +
                "Check the loss and the inputs for NaN/Inf, or pass errorIfNonfinite: false.");
        double coefficient = maxNorm / (total + 1e-6);
        if (coefficient < 1)
            foreach (var g in grads) Scale(g, coefficient);
        return total;
    }

    /// <summary>
    /// Clamps every gradient element to [−clipValue, clipValue] (PyTorch's <c>clip_grad_value_</c>).
    /// NaN elements stay NaN.
    /// </summary>
    /// <exception cref="ArgumentException">for a negative or NaN clipValue.</exception>
    public static void ClipGradValue(IEnumerable<Parameter> parameters, double clipValue)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(clipValue >= 0))
            throw new ArgumentException($"ClipGradValue: clipValue must be ≥ 0; got {clipValue}.", nameof(clipValue));
        foreach (var p in parameters)
        {
            if (p.Grad is not { } g) continue;
            if (g.Is<float>()) Clamp(g.Span<float>(), (float)clipValue);
            else Clamp(g.Span<double>(), clipValue);
        }
    }

    /// <summary>
    /// Adaptive gradient clipping, unit-wise (AGC; Brock, De, Smith &amp; Simonyan, 2021, "High-performance
    /// large-scale image recognition without normalization").
    /// </summary>
    /// <remarks>
    /// A unit is a row along the first (output) dimension of a parameter of rank ≥ 2 (all the weights
    /// feeding one output unit or channel), and a single element of a vector or scalar parameter
    /// (biases, gains). For each unit with weights w and gradient g (norms in double):
    /// <code>
    /// if ‖g‖₂ / max(‖w‖₂, ε) &gt; λ:   g ← g · λ·max(‖w‖₂, ε) / ‖g‖₂
    /// </code>
    /// so that afterwards ‖g‖₂ ≤ λ·max(‖w‖₂, ε). We differ from the paper's reference code (and timm)
    /// for vectors, which they treat as one unit; here each element of a vector is its own unit.
    /// </remarks>
    /// <param name="parameters">The parameters whose gradients are clipped.</param>
    /// <param name="clipping">λ &gt; 0, the largest allowed ratio ‖g‖/‖w‖ per unit.</param>
    /// <param name="eps">ε ≥ 0, the floor of ‖w‖ (so zero-initialised units can still move).</param>
    /// <exception cref="ArgumentException">for λ ≤ 0 or ε &lt; 0.</exception>
    public static void ClipGradAdaptive(IEnumerable<Parameter> parameters, double clipping = 0.01, double eps = 1e-3)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(clipping > 0))
            throw new ArgumentException($"ClipGradAdaptive: clipping must be > 0; got {clipping}.", nameof(clipping));
        if (!(eps >= 0))
            throw new ArgumentException($"ClipGradAdaptive: eps must be ≥ 0; got {eps}.", nameof(eps));
        foreach (var p in parameters)
        {
            if (p.Grad is not { } g) continue;
            var w = p.Data;
            int unit = w.Rank >= 2 && w.Count > 0 ? w.Count / w.Shape[0] : 1;
            if (g.Is<float>()) Adaptive(w.Span<float>(), g.Span<float>(), unit, clipping, eps);
            else Adaptive(w.Span<double>(), g.Span<double>(), unit, clipping, eps);
        }
    }

    private static void Adaptive<T>(ReadOnlySpan<T> w, Span<T> g, int unit, double clipping, double eps)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int start = 0; start < g.Length; start += unit)
        {
            double wNorm = Math.Max(Norm(w.Slice(start, unit)), eps);
            var gUnit = g.Slice(start, unit);
            double gNorm = Norm(gUnit);
            if (gNorm / wNorm > clipping)
                TensorPrimitives.Multiply(gUnit, T.CreateTruncating(clipping * wNorm / gNorm), gUnit);
        }
    }

    /// <summary>Adds Σ|x|^p to <paramref name="total"/> (in double, in order), or takes the max of |x| for p = ∞.</summary>
    private static double Accumulate<T>(ReadOnlySpan<T> x, double p, double total) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var v in x)
        {
            double a = Math.Abs(double.CreateTruncating(v));
            if (double.IsPositiveInfinity(p)) total = double.IsNaN(a) ? a : Math.Max(total, a);
            else total += p == 2 ? a * a : p == 1 ? a : Math.Pow(a, p);
        }
        return total;
    }

    private static double Norm<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sum = 0;
        foreach (var v in x)
        {
            double d = double.CreateTruncating(v);
            sum += d * d;
        }
        return Math.Sqrt(sum);
    }

    private static void Scale(Tensor g, double factor)
    {
        if (g.Is<float>()) TensorPrimitives.Multiply(g.Span<float>(), (float)factor, g.Span<float>());
        else TensorPrimitives.Multiply(g.Span<double>(), factor, g.Span<double>());
    }

    private static void Clamp<T>(Span<T> x, T c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorPrimitives.Max(x, -c, x);
        TensorPrimitives.Min(x, c, x);
    }
}

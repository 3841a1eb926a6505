using System.Globalization;
using GradFlow.Tensors;

namespace GradFlow.Autograd;

/// <summary>Tolerances of <see cref="GradCheck"/> (PyTorch's <c>gradcheck</c> defaults).</summary>
/// <param name="Epsilon">Finite-difference step h.</param>
/// <param name="AbsoluteTolerance">atol in <c>|analytic - numeric| ≤ atol + rtol·|numeric|</c>.</param>
/// <param name="RelativeTolerance">rtol in the same bound.</param>
/// <param name="Seed">Seed of the random output weights v (the check is on dL/dx with L = Σ v·f(x)).</param>
public sealed record GradCheckOptions(double Epsilon = 1e-6, double AbsoluteTolerance = 1e-5, double RelativeTolerance = 1e-3, ulong Seed = 1234);

/// <summary>The outcome of a gradient check.</summary>
/// <param name="Passed">Whether every checked element is within tolerance.</param>
/// <param name="Op">The op that produced the output (its grad_fn), or the name given to the check.</param>
/// <param name="Input">Index of the input with the worst element.</param>
/// <param name="Element">Multi-index of the worst element within that input.</param>
/// <param name="Analytic">Backpropagated gradient at that element.</param>
/// <param name="Numeric">Central finite difference at that element.</param>
/// <param name="Message">A readable summary naming all of the above.</param>
public sealed record GradCheckResult(bool Passed, string Op, int Input, int[] Element, double Analytic, double Numeric, string Message);

/// <summary>Raised by <see cref="GradCheck.Assert"/> when analytic and numeric gradients disagree.</summary>
public sealed class GradCheckException(GradCheckResult result) : Exception(result.Message)
{
    /// <summary>The failed check.</summary>
    public GradCheckResult Result { get; } = result;
}

/// <summary>
/// Compares backpropagated gradients with central finite differences evaluated in float64, like
/// <c>torch.autograd.gradcheck</c>.
/// </summary>
/// <remarks>
/// The inputs are copied to float64 leaves and <c>f</c> is evaluated through the same ops in double
/// precision. With a fixed random weight tensor v of the output's shape, L(x) = Σ v·f(x); the
/// analytic gradient is <c>f(x).Backward(v)</c> (which also exercises backward with a supplied
/// output gradient) and the numeric one is (L(x + h·e_j) − L(x − h·e_j)) / 2h for every element j of
/// every input that has <see cref="Tensor.RequiresGrad"/> set. Choose inputs away from kinks
/// (ReLU at 0, ties in max), where the derivative is not defined.
/// </remarks>
public static class GradCheck
{
    /// <summary>Runs the check and returns the worst element.</summary>
    /// <param name="f">The function; it must build its output from its arguments only.</param>
    /// <param name="inputs">Points to check at; those with RequiresGrad are differentiated.</param>
    /// <param name="options">Tolerances (defaults as PyTorch).</param>
    /// <param name="name">Name used in messages (default: the output's op).</param>
    public static GradCheckResult Run(Func<Tensor[], Tensor> f, Tensor[] inputs, GradCheckOptions? options = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new GradCheckOptions();
        if (!inputs.Any(t => t.RequiresGrad))
            throw new ArgumentException("gradcheck: no input has RequiresGrad set; nothing to check.");

        var x = inputs.Select(t =>
        {
            var c = Tensor.FromArray(t.ToDoubleArray(), t.Shape.ToArray().Length == 0 ? [] : t.Shape.ToArray());
            if (t.Rank == 0) c = Tensor.Scalar(t.GetFlat(0), DType.Float64);
            c.RequiresGrad = t.RequiresGrad;
            return c;
        }).ToArray();

        var y = f(x);
        if (y.DType != DType.Float64)
            throw new ArgumentException($"gradcheck: the function returned {y.DType}; it must compute in its inputs' type (float64 here).");
        string op = name ?? y.GradFn?.Op ?? "(no op)";
        if (!y.RequiresGrad)
            throw new ArgumentException($"gradcheck: the output of '{op}' does not require grad: the function does not depend on the inputs through differentiable ops.");
        var v = Tensor.Normal(new Generator(options.Seed), 0, 1, DType.Float64, y.Shape.ToArray());
        y.Backward(v);

        double worstScore = -1, worstA = 0, worstN = 0;
        int worstInput = -1, worstFlat = 0;
        using (GradMode.NoGrad())
        {
            for (int i = 0; i < x.Length; i++)
            {
                if (!x[i].RequiresGrad) continue;
                var analytic = x[i].Grad;
                var data = x[i];
                for (int j = 0; j < data.Count; j++)
                {
                    double saved = data.GetFlat(j);
                    data.SetFlatRaw(j, saved + options.Epsilon);
                    double plus = Dot(f(x), v);
                    data.SetFlatRaw(j, saved - options.Epsilon);
                    double minus = Dot(f(x), v);
                    data.SetFlatRaw(j, saved);
                    double numeric = (plus - minus) / (2 * options.Epsilon);
                    double a = analytic is null ? 0.0 : analytic.GetFlat(j);
                    double bound = options.AbsoluteTolerance + options.RelativeTolerance * Math.Abs(numeric);
                    double err = Math.Abs(a - numeric);
                    double score = double.IsNaN(err) ? double.PositiveInfinity : err / bound;
                    if (score > worstScore)
                    {
                        (worstScore, worstA, worstN, worstInput, worstFlat) = (score, a, numeric, i, j);
                    }
                }
            }
        }

        var element = Unflatten(worstFlat, x[worstInput].Shape);
        bool passed = worstScore <= 1.0;
        string where = $"input {worstInput} (shape [{string.Join(", ", x[worstInput].Shape.ToArray())}]) element [{string.Join(", ", element)}]";
        string message = passed
            ? $"gradcheck passed for '{op}': worst {where}: analytic {G(worstA)}, numeric {G(worstN)}"
            : $"gradcheck failed for '{op}': {where}: analytic {G(worstA)}, numeric {G(worstN)}, |difference| {G(Math.Abs(worstA - worstN))} exceeds atol {G(options.AbsoluteTolerance)} + rtol {G(options.RelativeTolerance)}·|numeric|";
        return new GradCheckResult(passed, op, worstInput, element, worstA, worstN, message);
    }

    /// <summary>Runs the check and throws <see cref="GradCheckException"/> when it fails.</summary>
    public static GradCheckResult Assert(Func<Tensor[], Tensor> f, Tensor[] inputs, GradCheckOptions? options = null, string? name = null)
    {
        var result = Run(f, inputs, options, name);
        if (!result.Passed) throw new GradCheckException(result);
        return result;
    }

    private static double Dot(Tensor y, Tensor v)
    {
        double s = 0;
        for (int i = 0; i < y.Count; i++) s += y.GetFlat(i) * v.GetFlat(i);
        return s;
    }

    private static int[] Unflatten(int flat, ReadOnlySpan<int> shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            idx[d] = shape[d] == 0 ? 0 : flat % shape[d];
            flat = shape[d] == 0 ? 0 : flat / shape[d];
        }
        return idx;
    }

    private static string G(double v) => v.ToString("G8", CultureInfo.InvariantCulture);
}

using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>Samples text from a character-level language model (a network [T] tokens → [T, V] logits).</summary>
public static class TextGeneration
{
    /// <summary>
    /// Continues <paramref name="prompt"/> by <paramref name="length"/> characters: at each step the model
    /// reads the last <paramref name="context"/> characters (fewer at the start), and the next character is
    /// drawn from <c>softmax(logits / temperature)</c> of the last position, with
    /// <paramref name="seed"/>'s generator (temperature 0: the most likely character). The model runs in
    /// evaluation mode without a graph. Same seed, same text.
    /// </summary>
    /// <returns>The prompt followed by the generated characters.</returns>
    /// <exception cref="ArgumentException">for an empty prompt, a character outside the corpus's vocabulary (naming it), a negative length or temperature.</exception>
    public static string Generate(Module model, TextCorpus corpus, int context, string prompt, int length, double temperature = 1.0, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Length == 0) throw new ArgumentException("generate: the prompt is empty; give at least one character.");
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (!(temperature >= 0) || double.IsInfinity(temperature)) throw new ArgumentException($"generate: temperature must be a finite number ≥ 0, got {temperature}.");
        var tokens = corpus.Encode(prompt).ToList();
        var g = new Generator(seed);
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            using var _ = GradMode.NoGrad();
            for (int n = 0; n < length; n++)
            {
                int start = Math.Max(0, tokens.Count - context);
                var window = tokens.Skip(start).Select(t => (float)t).ToArray();
                var logits = model.Forward(Tensor.FromArray(window, 1, window.Length));
                int v = logits.Shape[^1];
                var last = logits.Reshape(window.Length, v).Narrow(0, window.Length - 1, 1).ToDoubleArray();
                tokens.Add(temperature == 0 ? ArgMax(last) : Sample(last, temperature, g));
            }
        }
        finally
        {
            model.Train(wasTraining);
        }
        return corpus.Decode(tokens);
    }

    private static int ArgMax(double[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    private static int Sample(double[] logits, double temperature, Generator g)
    {
        double max = logits.Max();
        var p = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        double u = g.NextDouble() * p.Sum(), acc = 0;
        for (int i = 0; i < p.Length; i++)
        {
            acc += p[i];
            if (u < acc) return i;
        }
        return p.Length - 1;
    }
}

namespace GradFlow.Tensors;

/// <summary>Whether ops record the graph for backpropagation (per thread).</summary>
/// <example><code>using (GradMode.NoGrad()) { w.SubInPlace(g * lr); }</code></example>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    /// <summary>True unless the calling thread is inside a <see cref="NoGrad"/> scope.</summary>
    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>Disables graph recording on this thread until the returned scope is disposed.</summary>
    public static NoGradScope NoGrad()
    {
        _disabledDepth++;
        return new NoGradScope(0);
    }

    /// <summary>Ends a <see cref="NoGrad"/> scope.</summary>
    public readonly struct NoGradScope : IDisposable
    {
        // The dummy field keeps the struct non-empty for callers that copy it.
        private readonly int _unused;

        internal NoGradScope(int unused) => _unused = unused;

        /// <summary>Re-enables recording (scopes nest).</summary>
        public void Dispose() => _disabledDepth--;
    }
}

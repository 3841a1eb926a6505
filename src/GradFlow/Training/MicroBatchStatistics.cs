namespace GradFlow.Training;

/// <summary>
/// Statistics that an observer takes during a step's forward and backward and that describe the whole global batch only when
/// combined over its micro-batches: the gradient monitor's signal RMS, activation moments, saturation and dead units.
/// <see cref="DataParallel"/> asks each micro-batch's partial statistics after its backward, gathers them from every process with
/// its own per-micro-batch figures, and hands every process all of them in micro-batch order, so the combination is the same
/// sequence of operations for any number of processes.
/// </summary>
public interface IMicroBatchStatistics
{
    /// <summary>The doubles of one micro-batch's partial statistics (fixed for the run: every process sends as many).</summary>
    int MicroBatchStatisticsLength { get; }

    /// <summary>After a micro-batch's backward: writes its partial statistics into <paramref name="destination"/> (zeroed, <see cref="MicroBatchStatisticsLength"/> long) and starts the next micro-batch's.</summary>
    void EndMicroBatch(Span<double> destination);

    /// <summary>
    /// After the fixed statistics of every micro-batch are gathered: the doubles of one micro-batch's variable statistics this
    /// step (e.g. the monitor's signal at every time step, whose count the fixed statistics carry), computed from the gathered
    /// values, so the same on every process; 0 (the default) when there are none.
    /// </summary>
    int VariableStatisticsLength(ReadOnlySpan<double> statistics, int stride, int offset, ReadOnlySpan<double> weights) => 0;

    /// <summary>Writes the variable statistics of this process's <paramref name="index"/>-th non-empty micro-batch of the step (counting from 0 in the order of <see cref="EndMicroBatch"/>) into <paramref name="destination"/> (zeroed, <see cref="VariableStatisticsLength"/> long).</summary>
    void WriteVariableStatistics(int index, Span<double> destination) { }

    /// <summary>
    /// After the step's gradient is reduced: combines the partial statistics of the M micro-batches, micro-batch k's at
    /// <c>statistics[k·stride + offset ..]</c> and its variable statistics at <c>variable[k·variableStride ..]</c>
    /// (<paramref name="variableStride"/> = <see cref="VariableStatisticsLength"/>), in micro-batch order; <paramref name="weights"/>[k]
    /// is micro-batch k's share of the global batch, n_k/n (0 for an empty micro-batch, whose statistics are zeros).
    /// </summary>
    void CombineMicroBatches(ReadOnlySpan<double> statistics, int stride, int offset, ReadOnlySpan<double> variable, int variableStride,
        ReadOnlySpan<double> weights);
}

using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.TestSupport;

/// <summary>Bytes a training step allocates, with or without the gradient monitor sampling every step (update ratios included).</summary>
internal static class MonitorAllocation
{
    /// <summary>
    /// Mean bytes per step a measurement may exceed its baseline by and still count as no allocation
    /// per step. Any object allocated every step costs at least 24 bytes (header, method table, one
    /// field) per step; a smaller mean excess is a one-off allocation of the runtime spread over the
    /// measured steps (seen: 4 bytes per step over 60 steps on one AVX-512 machine, none on another).
    /// Exact byte counts depend on the machine and the runtime, so no test asserts them.
    /// </summary>
    public const long PerStepMargin = 16;

    /// <summary>Asserts that a monitored step allocates no object more than a plain one.</summary>
    public static void AssertNoMoreThan(long plain, long monitored) =>
        Assert.True(monitored <= plain + PerStepMargin,
            $"a monitored step allocates {monitored} bytes, a plain one {plain}: {monitored - plain} more per step (margin {PerStepMargin}), so the monitor allocates per step");

    /// <summary>
    /// Runs 200 steps of <paramref name="model"/> and returns the bytes allocated per step over steps
    /// 140-199 (after the monitor's history capacities have doubled to 256 at step 128).
    /// </summary>
    public static long PerStep(Module model, Optimizer optimizer, Func<Tensor> loss, bool monitored)
    {
        using var mon = monitored ? new GradientMonitor(model, 1) : null;
        // The monitor's forward hooks keep each Linear and its activation apart (a hooked module is
        // never fused); the plain run gets no-op hooks on the same modules, so both build the same graph
        // and the difference is the monitor's own allocation.
        var unfuse = monitored ? [] : model.NamedModules().Select(m => m.Module).Where(m => m is Relu or Tanh or Sigmoid)
            .Select(m => m.RegisterForwardHook((_, _, _) => { })).ToList();
        long before = 0;
        for (int step = 0; step < 200; step++)
        {
            if (step == 140) before = GC.GetAllocatedBytesForCurrentThread();
            if (mon is not null)
            {
                mon.BeginSample(step);
                optimizer.TrackUpdates = true;
            }
            optimizer.ZeroGrad();
            var l = loss();
            BackwardEngine.Backward(l);
            mon?.RecordGradients(l.Item());
            optimizer.Step();
            mon?.EndSample(optimizer);
        }
        long perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / 60;
        foreach (var h in unfuse) h.Dispose();
        if (mon is not null) Assert.Equal(200, mon.Samples.Count);
        return perStep;
    }
}

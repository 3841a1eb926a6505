using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.Autograd;

[CollectionDefinition("Allocation", DisableParallelization = true)]
public sealed class AllocationCollection;

/// <summary>Storage reuse across training steps (TensorPool): no allocation in steady state, and never a reused buffer seen through an old tensor.</summary>
[Collection("Allocation")]
public class StepAllocationTests
{
    private static (Sequential Model, Tensor X, IndexTensor Y, Sgd Opt) SmallMlp(int width = 32)
    {
        var gen = new Generator(7);
        var model = new Sequential(new Linear(20, width, gen), new Relu(), new Linear(width, width, gen), new Tanh(), new Linear(width, 5, gen));
        var x = Tensor.RandN(gen, 8, 20);
        var y = IndexTensor.FromArray([0, 1, 2, 3, 4, 0, 1, 2], 8);
        return (model, x, y, new Sgd(model.Parameters(), learningRate: 0.05, momentum: 0.9));
    }

    private static double Step(Sequential model, Tensor x, IndexTensor y, Sgd opt, bool release)
    {
        opt.ZeroGrad();
        var loss = Losses.CrossEntropy(model.Forward(x), y);
        loss.Backward(releaseIntermediates: release);
        opt.Step();
        return loss.Item();
    }

    [Fact]
    public void TrainingStep_SteadyStateWithReleasedIntermediates_AllocatesNoStorage()
    {
        var (model, x, y, opt) = SmallMlp();
        for (int i = 0; i < 5; i++) Step(model, x, y, opt, release: true);
        const int steps = 200;
        long bytes = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < steps; i++) Step(model, x, y, opt, release: true);
        double perStep = (double)(GC.GetAllocatedBytesForCurrentThread() - bytes) / steps;
        // What is left are the small graph objects (tensors, nodes, closures, shapes): no storage.
        // The smallest storage of a step, one [8, 32] activation, is 1 KiB; all of them are 6 KiB.
        Assert.True(perStep < 8 * 1024, $"{perStep:F0} bytes allocated per step");
        long storage = 0;
        foreach (var p in model.Parameters()) storage += p.Count * 4L;
        Assert.True(perStep < storage, $"{perStep:F0} bytes per step, parameters alone are {storage}");
    }

    [Fact]
    public void TrainingStep_Default_AllocatesNoGradientStorage()
    {
        // Forward outputs (4 × [8, 256] + [8, 5]: 33 KiB) are still fresh; gradients (286 KiB) and
        // backward temporaries are reused.
        AssertDefaultStepsReuseGradients();
    }

    /// <summary>Plain <c>Backward()</c> steps of a 256-wide MLP allocate less than a quarter of its gradients' bytes per step.</summary>
    private static void AssertDefaultStepsReuseGradients()
    {
        var (model, x, y, opt) = SmallMlp(width: 256);
        for (int i = 0; i < 5; i++) Step(model, x, y, opt, release: false);
        const int steps = 50;
        long bytes = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < steps; i++) Step(model, x, y, opt, release: false);
        double perStep = (double)(GC.GetAllocatedBytesForCurrentThread() - bytes) / steps;
        long gradients = 0;
        foreach (var p in model.Parameters()) gradients += p.Count * 4L;
        Assert.True(perStep < gradients / 4, $"{perStep:F0} bytes per step against {gradients} bytes of gradients");
    }

    [Fact]
    public void TrainingStep_AfterEarlierWorkFilledThePool_StillReusesGradientStorage()
    {
        // A thread whose pool is full of another workload's arrays (a bigger model trained before, or other tests on a
        // test runner's thread) must still reuse the current step's gradients.
        const int stale = 1 << 20; // 4 MiB float arrays, a length no step here uses
        try
        {
            while (TensorPool.PooledBytes + stale * 4L <= TensorPool.MaxBytes)
                TensorPool.Return(GC.AllocateUninitializedArray<float>(stale));
            Assert.True(TensorPool.PooledBytes > TensorPool.MaxBytes - stale * 4L, "the pool was not filled");
            AssertDefaultStepsReuseGradients();
        }
        finally
        {
            TensorPool.Clear(); // the runner thread's later tests do not keep 256 MiB of stale arrays
        }
    }

    [Fact]
    public void TrainingStep_IntermediatesBeyondTheInitialCapacity_StillAllocateNoStorage()
    {
        // Five 64 MiB intermediates (320 MiB) and their gradients: more than the 256 MiB a thread's pool holds
        // before a step says what it needs. Before the capacity followed the step, the pool overflowed at the
        // end of every backward pass, dropped everything, and each step allocated all of it anew.
        const int n = 1 << 24;
        var x = Tensor.FromArray(new float[n], n);
        x.RequiresGrad = true;
        try
        {
            void Step()
            {
                x.Grad = null;
                x.Tanh().Tanh().Tanh().Tanh().Tanh().Sum().Backward(releaseIntermediates: true);
            }
            for (int i = 0; i < 3; i++) Step();
            Assert.True(TensorPool.Capacity > TensorPool.MaxBytes, $"capacity {TensorPool.Capacity} did not grow beyond {TensorPool.MaxBytes}");
            long bytes = GC.GetAllocatedBytesForCurrentThread();
            const int steps = 6;
            for (int i = 0; i < steps; i++) Step();
            double perStep = (double)(GC.GetAllocatedBytesForCurrentThread() - bytes) / steps;
            // x's gradient is the one array a step hands out for good (it is set to null here, not released)
            Assert.True(perStep < 1.5 * n * 4, $"{perStep / (1 << 20):F0} MiB allocated per step; one intermediate is {n * 4 >> 20} MiB");
        }
        finally
        {
            TensorPool.Clear();
        }
    }

    [Fact]
    public void EndStep_DropsLengthsTheStepDidNotAskFor_AndKeepsTheOthers()
    {
        try
        {
            TensorPool.Clear();
            var used = TensorPool.Rent<float>(1000);
            TensorPool.Return(used);
            TensorPool.Return(GC.AllocateUninitializedArray<float>(777)); // returned, never asked for in this step
            TensorPool.Return(GC.AllocateUninitializedArray<double>(1000)); // the same length in another type: not asked for either
            Assert.Equal(1000 * 4 + 777 * 4 + 1000 * 8, TensorPool.PooledBytes);
            TensorPool.EndStep(returning: 0);
            Assert.Equal(1000 * 4, TensorPool.PooledBytes);
            Assert.Same(used, TensorPool.Rent<float>(1000));
            Assert.Equal(TensorPool.MaxBytes, TensorPool.Capacity); // a small step keeps the initial capacity
        }
        finally
        {
            TensorPool.Clear();
        }
    }

    [Fact]
    public void TrainingSteps_WithPooling_MatchTheSameStepsBitForBit()
    {
        // Same seed: default, released intermediates, and a fresh model per step order give the same numbers.
        var (m1, x1, y1, o1) = SmallMlp();
        var (m2, x2, y2, o2) = SmallMlp();
        for (int i = 0; i < 20; i++)
        {
            double a = Step(m1, x1, y1, o1, release: false);
            double b = Step(m2, x2, y2, o2, release: true);
            Assert.Equal(a, b);
        }
        var p1 = m1.Parameters().ToArray();
        var p2 = m2.Parameters().ToArray();
        for (int i = 0; i < p1.Length; i++) Assert.Equal(p1[i].Data.ToArray(), p2[i].Data.ToArray());
    }

    [Fact]
    public void ZeroGrad_GradientKeptAcrossIt_ThrowsOnUseInsteadOfSeeingReusedStorage()
    {
        var (model, x, y, opt) = SmallMlp();
        Step(model, x, y, opt, release: false);
        var p = model.Parameters().First();
        var kept = p.Grad!;
        var copy = kept.Clone();
        var view = kept.Reshape(-1);
        opt.ZeroGrad();
        var e = Assert.Throws<InvalidOperationException>(() => kept.ToArray());
        Assert.Contains("ZeroGrad", e.Message);
        Assert.Throws<InvalidOperationException>(() => view.Sum());
        Assert.Equal(copy.Count, copy.ToArray().Length); // a clone is unaffected
    }

    [Fact]
    public void ZeroGrad_UserAssignedGradient_IsOnlyDropped()
    {
        var (model, _, _, opt) = SmallMlp();
        var p = model.Parameters().First();
        var mine = Tensor.Ones(p.Data.ShapeArray);
        p.Grad = mine;
        opt.ZeroGrad();
        Assert.Null(p.Grad);
        Assert.Equal(p.Count, mine.ToArray().Count(v => v == 1f));
    }

    [Fact]
    public void Backward_ReleaseIntermediates_LogitsThrowAfterwardAndLeavesStayIntact()
    {
        var (model, x, y, opt) = SmallMlp();
        var logits = model.Forward(x);
        var loss = Losses.CrossEntropy(logits, y);
        loss.Backward(releaseIntermediates: true);
        Assert.Throws<InvalidOperationException>(() => logits.ToArray());
        Assert.True(double.IsFinite(loss.Item()));
        Assert.Equal(20 * 8, x.ToArray().Length);
        foreach (var p in model.Parameters())
        {
            Assert.All(p.Data.ToArray(), v => Assert.True(float.IsFinite(v)));
            Assert.All(p.Grad!.ToArray(), v => Assert.True(float.IsFinite(v)));
        }
        opt.Step();
    }

    [Fact]
    public void Backward_GradientSharedByInputsAndViews_IsNotReusedWhileReferenced()
    {
        // y = sum(a + a) + sum((a*b).reshape + b·b): the gradient of '+' goes to both inputs as the
        // same tensor, reshape passes a view on; run repeatedly so pooled buffers come back.
        for (int step = 0; step < 5; step++)
        {
            var a = Tensor.FromArray([1f, 2f, 3f, 4f], 2, 2);
            var b = Tensor.FromArray([5f, 6f, 7f, 8f], 2, 2);
            a.RequiresGrad = b.RequiresGrad = true;
            var s = a + a;
            var t = (a * b).Reshape(4).Reshape(2, 2) + b * b;
            (s * s + t).Sum().Backward(releaseIntermediates: step % 2 == 1);
            // d/da: 2·(2a)·2 + b = 8a + b;  d/db: a + 2b
            Assert.Equal([13f, 22f, 31f, 40f], a.Grad!.ToArray());
            Assert.Equal([11f, 14f, 17f, 20f], b.Grad!.ToArray());
        }
    }
}

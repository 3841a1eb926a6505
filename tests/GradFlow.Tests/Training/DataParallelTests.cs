using GradFlow.Autograd;
using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Training;

/// <summary>
/// The data-parallel step in one process: the combined micro-batch gradient is the whole batch's (up to float rounding), the
/// batch norms' running statistics are replayed in micro-batch order, and bad micro-batch counts are refused. The bit identity
/// across process counts is <see cref="MpiTrainingTests"/>'.
/// </summary>
public class DataParallelTests
{
    private static Batch OneBatch(int n, int features, int classes, ulong seed)
    {
        var gen = new Generator(seed);
        var x = Tensor.RandN(gen, n, features);
        var labels = new int[n];
        for (int i = 0; i < n; i++) labels[i] = (int)(gen.NextUInt64() % (ulong)classes);
        var data = Dataset.Classification(x, IndexTensor.FromArray(labels, n), classes);
        return new DataLoader(data, n, shuffle: false).Epoch(0).Single();
    }

    private static Tensor Loss(Tensor output, Batch batch) => Losses.CrossEntropy(output, batch.Labels!);

    [Theory]
    [InlineData(10, 1)]
    [InlineData(10, 3)] // micro-batches of 3, 3 and 4 examples, weighted by size
    [InlineData(10, 10)]
    public void ComputeGradients_MicroBatches_EqualTheWholeBatchGradient(int n, int microBatches)
    {
        var gen = new Generator(7);
        var model = new Sequential(new Linear(5, 8, gen), new Tanh(), new Linear(8, 3, gen));
        var optimizer = new Sgd(model.Parameters(), 0.1);
        var batch = OneBatch(n, 5, 3, 11);

        optimizer.ZeroGrad();
        var whole = Loss(model.Forward(batch.Inputs), batch);
        BackwardEngine.Backward(whole);
        var expected = model.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray();
        double expectedLoss = whole.Item();

        var step = new DataParallel(model, optimizer, SingleProcessCommunicator.Instance, microBatches);
        var (loss, correct) = step.ComputeGradients(batch, Loss, (o, b) => 0);
        Assert.Equal(0, correct);
        Assert.Equal(expectedLoss, loss, 5);
        var actual = model.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray();
        for (int i = 0; i < expected.Length; i++)
            for (int j = 0; j < expected[i].Length; j++)
                Assert.True(Math.Abs(expected[i][j] - actual[i][j]) <= 1e-6 + 1e-5 * Math.Abs(expected[i][j]),
                    $"parameter {i} element {j}: whole batch {expected[i][j]}, micro-batches {actual[i][j]}");
    }

    [Fact]
    public void GradientMonitor_MicroBatches_GiveTheWholeBatchSample()
    {
        // 12 examples, |x| ≤ 3 except x[0, 0] = 5; 5 micro-batches of 2, 2, 3, 2 and 3 examples (uneven weights n_k/n)
        var gen = new Generator(5);
        var x = Tensor.RandN(gen, 12, 4);
        var xs = x.Span<float>();
        for (int i = 0; i < xs.Length; i++) xs[i] = Math.Clamp(xs[i], -3f, 3f);
        xs[0] = 5;
        var labels = Enumerable.Range(0, 12).Select(i => i % 3).ToArray();
        var batch = new DataLoader(Dataset.Classification(x, IndexTensor.FromArray(labels, 12), 3), 12, shuffle: false).Epoch(0).Single();
        var first = new Linear(4, 6, new Generator(1));
        var second = new Linear(6, 5, new Generator(2));
        var model = new Sequential(first, new Relu(), second, new Tanh(), new Linear(5, 3, new Generator(3)));
        // ReLU unit 0 fires for example 0 only (the first micro-batch: dead in the others), unit 1 never
        var w = first.Weight.Data.Span<float>();
        var b = first.Bias!.Data.Span<float>();
        w[..4].Clear();
        w[0] = 1;
        b[0] = -4;
        w.Slice(4, 4).Clear();
        b[1] = -100;
        // a tanh layer of large weights: part of its units saturated
        foreach (ref float v in second.Weight.Data.Span<float>()) v *= 8;
        var optimizer = new Sgd(model.Parameters(), 0.1);
        using var monitor = new GradFlow.Diagnostics.GradientMonitor(model, every: 1);

        monitor.BeginSample(0);
        optimizer.ZeroGrad();
        var loss = Loss(model.Forward(batch.Inputs), batch);
        BackwardEngine.Backward(loss);
        monitor.RecordGradients(loss.Item());
        monitor.EndSample();
        var whole = monitor.Last!;

        monitor.BeginSample(1);
        var step = new DataParallel(model, optimizer, SingleProcessCommunicator.Instance, 5, [monitor]);
        monitor.RecordGradients(step.ComputeGradients(batch, Loss, null).Loss);
        monitor.EndSample();
        var micro = monitor.Last!;

        Assert.Equal(1.0 / 6, whole.Layers[0].DeadUnits);
        Assert.InRange(whole.Layers[1].Saturation, 0.05, 0.95);
        static void Close(double expected, double actual, string what) =>
            Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Abs(expected) + 1e-9, $"{what}: whole batch {expected}, micro-batches {actual}");
        Close(whole.GlobalGradientNorm, micro.GlobalGradientNorm, "global gradient norm");
        for (int l = 0; l < 3; l++)
        {
            var (e, a) = (whole.Layers[l], micro.Layers[l]);
            Close(e.BackpropagatedSignalRms, a.BackpropagatedSignalRms, $"layer {l + 1} signal RMS");
            Close(e.ParameterGradientNorm, a.ParameterGradientNorm, $"layer {l + 1} gradient norm");
            Close(e.ActivationMean, a.ActivationMean, $"layer {l + 1} activation mean");
            Close(e.ActivationStd, a.ActivationStd, $"layer {l + 1} activation std");
            Assert.Equal(e.Saturation, a.Saturation);
            Assert.Equal(e.DeadUnits, a.DeadUnits);
        }
    }

    [Theory]
    [InlineData(RecurrentCellKind.RnnTanh)]
    [InlineData(RecurrentCellKind.Lstm)]
    public void GradientMonitor_RecurrentModelMicroBatches_GiveTheWholeBatchSignalThroughTime(RecurrentCellKind cell)
    {
        // 10 sequences of 9 steps, 3 micro-batches of 3, 3 and 4: every stacked layer's dL/dh_t, combined with weights (n_k/n)²
        var gen = new Generator(21);
        var x = Tensor.RandN(gen, 10, 9, 3);
        var y = Tensor.RandN(gen, 10, 1);
        var batch = new DataLoader(Dataset.Regression(x, y), 10, shuffle: false).Epoch(0).Single();
        var model = new SequenceRegressor(cell, 3, 5, new Generator(4), numLayers: 2);
        var optimizer = new Sgd(model.Parameters(), 0.1);
        static Tensor Mse(Tensor output, Batch b) => Losses.Mse(output, b.Targets!);
        using var monitor = new GradFlow.Diagnostics.GradientMonitor(model, every: 1);

        monitor.BeginSample(0);
        optimizer.ZeroGrad();
        var loss = Mse(model.Forward(batch.Inputs), batch);
        BackwardEngine.Backward(loss);
        monitor.RecordGradients(loss.Item());
        monitor.EndSample();
        var whole = monitor.Last!;

        monitor.BeginSample(1);
        var step = new DataParallel(model, optimizer, SingleProcessCommunicator.Instance, 3, [monitor]);
        monitor.RecordGradients(step.ComputeGradients(batch, Mse, null).Loss);
        monitor.EndSample();
        var micro = monitor.Last!;

        Assert.NotNull(whole.TimeSignal);
        Assert.NotNull(micro.TimeSignal);
        Assert.Equal(2, micro.TimeSignal.Length);
        static void Close(double expected, double actual, string what) =>
            Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Abs(expected) + 1e-12, $"{what}: whole batch {expected}, micro-batches {actual}");
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(9, micro.TimeSignal[k].Length);
            for (int t = 0; t < 9; t++) Close(whole.TimeSignal[k][t], micro.TimeSignal[k][t], $"layer {k} step {t} signal");
            Close(whole.Layers[k].BackpropagatedSignalRms, micro.Layers[k].BackpropagatedSignalRms, $"layer {k} signal RMS");
            Close(whole.Layers[k].ParameterGradientNorm, micro.Layers[k].ParameterGradientNorm, $"layer {k} gradient norm");
        }
        // the signal at the first step differs from the last's: the sample is not one constant
        Assert.NotEqual(micro.TimeSignal[1][0], micro.TimeSignal[1][8]);
        Close(whole.Layers[2].BackpropagatedSignalRms, micro.Layers[2].BackpropagatedSignalRms, "head signal RMS");
        Close(whole.Layers[1].ActivationStd, micro.Layers[1].ActivationStd, "top layer activation std");
    }

    [Fact]
    public void ComputeGradients_BatchNorm_ReplaysRunningStatisticsInMicroBatchOrder()
    {
        var batch = OneBatch(8, 4, 2, 3);
        Sequential Build() => new(new Linear(4, 6, new Generator(1)), new BatchNorm1d(6), new Relu(), new Linear(6, 2, new Generator(2)));

        // reference: the two halves forwarded one after the other, each updating the running statistics at once
        var reference = Build();
        reference.Forward(batch.Rows(0, 4).Inputs);
        reference.Forward(batch.Rows(4, 4).Inputs);
        var norm = (BatchNorm1d)reference.NamedModules().Select(m => m.Module).OfType<BatchNorm1d>().Single();

        var model = Build();
        var step = new DataParallel(model, new Sgd(model.Parameters(), 0.1), SingleProcessCommunicator.Instance, 2);
        step.ComputeGradients(batch, Loss, null);
        var replayed = model.NamedModules().Select(m => m.Module).OfType<BatchNorm1d>().Single();

        Assert.Equal(norm.RunningMean!.ToDoubleArray(), replayed.RunningMean!.ToDoubleArray());
        Assert.Equal(norm.RunningVar!.ToDoubleArray(), replayed.RunningVar!.ToDoubleArray());
        Assert.Equal(2.0, replayed.NumBatchesTracked!.Item());
        Assert.Null(replayed.DeferredUpdates);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void ComputeGradients_ProcessesWithSmallBuckets_GiveTheOneProcessGradientsBitForBit(int processes)
    {
        // 23 examples in 6 uneven micro-batches; one process with one bucket against threads standing in for processes, with
        // buckets of 64 bytes (a parameter each or two, slices padded), the running statistics replayed across them
        var batch = OneBatch(23, 5, 3, 5);
        Sequential Build() => new(new Linear(5, 8, new Generator(1)), new BatchNorm1d(8), new Relu(), new Linear(8, 7, new Generator(2)), new Tanh(),
            new Linear(7, 3, new Generator(3)));
        (float[][] Grads, float[] Mean, double Loss) Run(ICommunicator communicator, int bucketBytes, Action<DataParallel, Sequential>? observe = null)
        {
            var model = Build();
            var step = new DataParallel(model, new Sgd(model.Parameters(), 0.1), communicator, 6, bucketBytes: bucketBytes);
            observe?.Invoke(step, model);
            var (loss, _) = step.ComputeGradients(batch, Loss, null);
            var norm = model.NamedModules().Select(m => m.Module).OfType<BatchNorm1d>().Single();
            return (model.Parameters().Select(p => p.Grad!.ToArray()).ToArray(), norm.RunningMean!.ToArray(), loss);
        }

        var expected = Run(SingleProcessCommunicator.Instance, DataParallel.DefaultBucketBytes);
        var communicators = ThreadCommunicator.Create(processes);
        var startedBeforeFirstLayer = new int[processes];
        var buckets = new int[processes];
        var errors = new Exception?[processes];
        var results = new (float[][] Grads, float[] Mean, double Loss)[processes];
        var threads = Enumerable.Range(0, processes).Select(r => new Thread(() =>
        {
            try
            {
                results[r] = Run(communicators[r], 64, Observe);
            }
            catch (Exception e)
            {
                errors[r] = e;
            }
        }) { IsBackground = true }).ToArray();
        void Observe(DataParallel step, Sequential model)
        {
            int r = step.Communicator.Rank;
            buckets[r] = step.Buckets.Count;
            // the first layer's weight is the last gradient backward finishes: the later buckets' reductions have started by then
            model.Parameters().First().Data.RegisterHook(g =>
            {
                startedBeforeFirstLayer[r] = communicators[r].StartedAllToAlls;
                return null;
            });
        }
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(60)));
        for (int r = 0; r < processes; r++)
        {
            Assert.Null(errors[r]);
            // (3 + 21), (7 + 56), (8 + 8) and (8 + 40) floats: the last layer's parameters first
            Assert.Equal(4, buckets[r]);
            Assert.Equal(expected.Loss, results[r].Loss);
            Assert.Equal(expected.Mean, results[r].Mean);
            for (int i = 0; i < expected.Grads.Length; i++) Assert.Equal(expected.Grads[i], results[r].Grads[i]);
            Assert.True(startedBeforeFirstLayer[r] == 3, $"rank {r}: {startedBeforeFirstLayer[r]} reductions started before the first layer's gradient");
        }
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    public void ComputeGradients_SyncBatchNormWithSeveralMicroBatchesPerProcess_GivesTheWholeBatchGradientAndStatistics(int processes, int perProcess)
    {
        // 25 examples; the whole batch in one forward with plain batch norm against threads standing in for processes, each
        // with several micro-batches and synchronised statistics (local statistics would be off by far more than the rounding)
        var batch = OneBatch(25, 5, 3, 9);
        Sequential Build() => new(new Linear(5, 8, new Generator(1)), new BatchNorm1d(8), new Relu(), new Linear(8, 3, new Generator(2)));
        var reference = Build();
        var whole = Loss(reference.Forward(batch.Inputs), batch);
        BackwardEngine.Backward(whole);
        var expected = reference.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray();
        var expectedVar = reference.NamedModules().Select(m => m.Module).OfType<BatchNorm1d>().Single().RunningVar!.ToDoubleArray();

        (double[][] Grads, double[] Var, double Loss) Run(ICommunicator communicator, bool sync)
        {
            var model = Build();
            var step = new DataParallel(model, new Sgd(model.Parameters(), 0.1), communicator, processes * perProcess, syncBatchNorm: sync);
            var (loss, _) = step.ComputeGradients(batch, Loss, null);
            var norm = model.NamedModules().Select(m => m.Module).OfType<BatchNorm1d>().Single();
            return (model.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray(), norm.RunningVar!.ToDoubleArray(), loss);
        }

        var communicators = ThreadCommunicator.Create(processes);
        var results = new (double[][] Grads, double[] Var, double Loss)[processes];
        var errors = new Exception?[processes];
        var threads = Enumerable.Range(0, processes).Select(r => new Thread(() =>
        {
            try
            {
                results[r] = Run(communicators[r], sync: true);
            }
            catch (Exception e)
            {
                errors[r] = e;
            }
        }) { IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(60)));
        static bool Close(double e, double a) => Math.Abs(e - a) <= 1e-6 + 1e-5 * Math.Abs(e);
        for (int r = 0; r < processes; r++)
        {
            Assert.Null(errors[r]);
            Assert.True(Close(whole.Item(), results[r].Loss), $"rank {r}: loss {results[r].Loss}, whole batch {whole.Item()}");
            for (int c = 0; c < expectedVar.Length; c++)
                Assert.True(Close(expectedVar[c], results[r].Var[c]), $"rank {r}: running variance {c}: whole batch {expectedVar[c]}, synchronised {results[r].Var[c]}");
            for (int i = 0; i < expected.Length; i++)
                for (int j = 0; j < expected[i].Length; j++)
                    Assert.True(Close(expected[i][j], results[r].Grads[i][j]),
                        $"rank {r}: parameter {i} element {j}: whole batch {expected[i][j]}, synchronised micro-batches {results[r].Grads[i][j]}");
        }
        // the same micro-batches with local statistics: far from the whole batch
        var local = Run(SingleProcessCommunicator.Instance, sync: false);
        Assert.Contains(Enumerable.Range(0, expected.Length).SelectMany(i => expected[i].Zip(local.Grads[i])), p => Math.Abs(p.First - p.Second) > 1e-3);
    }

    [Fact]
    public void Buckets_AreFormedLastParameterFirstUpToTheByteSize()
    {
        // parameters: 40 + 8 (first layer), 56 + 7, 21 + 3 floats; 1 MiB: one bucket; 90 bytes: (3 + 21), (7 + 56), (8 + 40); 1 byte: one each
        var model = new Sequential(new Linear(5, 8, new Generator(1)), new Relu(), new Linear(8, 7, new Generator(2)), new Linear(7, 3, new Generator(3)));
        var optimizer = new Sgd(model.Parameters(), 0.1);
        Assert.Equal([(0, 6)], new DataParallel(model, optimizer, SingleProcessCommunicator.Instance, 1).Buckets);
        Assert.Equal([(4, 6), (2, 4), (0, 2)], new DataParallel(model, optimizer, SingleProcessCommunicator.Instance, 1, bucketBytes: 90).Buckets);
        Assert.Equal([(5, 6), (4, 5), (3, 4), (2, 3), (1, 2), (0, 1)], new DataParallel(model, optimizer, SingleProcessCommunicator.Instance, 1, bucketBytes: 1).Buckets);
    }

    [Fact]
    public void Constructor_MicroBatchesNotAMultipleOfTheProcesses_IsRefused()
    {
        var model = new Linear(2, 2, new Generator(0));
        var e = Assert.Throws<ArgumentException>(() => new DataParallel(model, new Sgd(model.Parameters(), 0.1), SingleProcessCommunicator.Instance, 0));
        Assert.Contains("0 micro-batches", e.Message);
    }

    [Fact]
    public void TrainingConfig_MoreMicroBatchesThanExamples_IsRefusedNamingTheField()
    {
        var e = Assert.Throws<FormatException>(() => new TrainingConfig { Data = "spirals", Model = "mlp 2-8-2", BatchSize = 4, MicroBatches = 8 }.Validate());
        Assert.Contains("microBatches", e.Message);
    }

    [Fact]
    public void Batch_Rows_CopiesThoseExamples()
    {
        var batch = OneBatch(6, 3, 2, 5);
        var rows = batch.Rows(2, 3);
        Assert.Equal(3, rows.Count);
        Assert.Equal(batch.Inputs.ToDoubleArray()[6..15], rows.Inputs.ToDoubleArray());
        Assert.Equal(batch.Labels!.ToArray()[2..5], rows.Labels!.ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.Rows(4, 3));
    }
}

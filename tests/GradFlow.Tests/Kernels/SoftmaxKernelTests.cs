using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

public class SoftmaxKernelTests
{
    public static TheoryData<int> Lengths => KernelLengths.All;

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SoftmaxAndLogSoftmax_MatchReferenceFormulas(int n)
    {
        var x = KernelLengths.Values(2 * n, seed: n).Select(v => v * 10).ToArray();
        x[0] = 1000f; // stability: a huge logit must not overflow
        var y = new float[2 * n];
        var logY = new float[2 * n];
        SoftmaxKernels.Softmax<float>(x, y, n);
        SoftmaxKernels.LogSoftmax<float>(x, logY, n);
        for (int r = 0; r < 2; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < n; j++) max = Math.Max(max, x[r * n + j]);
            double sum = 0;
            for (int j = 0; j < n; j++) sum += Math.Exp(x[r * n + j] - max);
            for (int j = 0; j < n; j++)
            {
                double logRef = x[r * n + j] - max - Math.Log(sum);
                Assert.True(Math.Abs(y[r * n + j] - Math.Exp(logRef)) <= 1e-6, $"softmax n={n}: {y[r * n + j]} vs {Math.Exp(logRef)}");
                Assert.True(Math.Abs(logY[r * n + j] - logRef) <= 2e-6 * Math.Max(1, Math.Abs(logRef)), $"log_softmax n={n}: {logY[r * n + j]} vs {logRef}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Backward_MatchesJacobianProduct(int n)
    {
        var x = KernelLengths.Values(n, seed: n).Select(v => (double)v).ToArray();
        var dy = KernelLengths.Values(n, seed: n + 7).Select(v => (double)v).ToArray();
        var y = new double[n];
        var logY = new double[n];
        SoftmaxKernels.Softmax<double>(x, y, n);
        SoftmaxKernels.LogSoftmax<double>(x, logY, n);
        var dx = new double[n];
        var dxLog = new double[n];
        SoftmaxKernels.SoftmaxBackward<double>(y, dy, dx, n);
        SoftmaxKernels.LogSoftmaxBackward<double>(logY, dy, dxLog, n);
        // Explicit Jacobians: dsoftmax_j/dx_i = y_j(δ_ij − y_i); dlogsoftmax_j/dx_i = δ_ij − y_i.
        for (int i = 0; i < n; i++)
        {
            double s = 0, sLog = 0;
            for (int j = 0; j < n; j++)
            {
                double delta = i == j ? 1 : 0;
                s += dy[j] * y[j] * (delta - y[i]);
                sLog += dy[j] * (delta - y[i]);
            }
            Assert.True(Math.Abs(s - dx[i]) <= 1e-12 * Math.Max(1, Math.Abs(s)), $"softmax backward n={n} i={i}: {dx[i]} vs {s}");
            Assert.True(Math.Abs(sLog - dxLog[i]) <= 1e-12 * Math.Max(1, Math.Abs(sLog)), $"log_softmax backward n={n} i={i}: {dxLog[i]} vs {sLog}");
        }
    }
}

using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// The packing of GEMM operands against its definition, element by element: panel element
/// <c>dst[p·mr + r]</c> is op(A)(i0 + r, p0 + p) for r below the rows asked for and exactly 0 beyond,
/// and nothing outside the panel is written. Shapes cover the vector blocks (8 and 4 rows, 8 and 4
/// depths), their remainders and the scalar path, with row strides wider than the rows.
/// </summary>
public class GemmPackTests
{
    public static TheoryData<int, int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, int, bool>();
        foreach (int mr in new[] { 6, 12, 16 })
            foreach (int rows in new[] { 1, 3, 4, 5, 8, 9, 11, 12, 13, 16 }.Where(r => r <= mr))
                foreach (int kc in new[] { 1, 3, 4, 7, 8, 9, 17, 64 })
                    foreach (bool trans in new[] { false, true })
                        data.Add(mr, rows, kc, trans);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void PackA_Float_IsTheRowPanelOfOpA(int mr, int rows, int kc, bool trans)
    {
        const int i0 = 3, p0 = 5;
        int m = i0 + rows + 2, k = p0 + kc + 3;
        int lda = (trans ? m : k) + 7;
        var rng = new Random(mr * 1000 + rows * 100 + kc + (trans ? 7 : 0));
        var a = new float[(trans ? k : m) * lda];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        const float Guard = 12345f;
        var dst = Enumerable.Repeat(Guard, mr * kc + 8).ToArray();
        fixed (float* pa = a)
        fixed (float* pd = dst)
            GemmPack.PackA(pa, lda, trans, i0, rows, p0, kc, mr, pd);
        for (int p = 0; p < kc; p++)
            for (int r = 0; r < mr; r++)
            {
                float expected = r >= rows ? 0f : trans ? a[(p0 + p) * lda + i0 + r] : a[(i0 + r) * lda + p0 + p];
                Assert.True(expected == dst[p * mr + r], $"panel element (depth {p}, row {r}): {dst[p * mr + r]}, expected {expected}");
            }
        Assert.All(dst[(mr * kc)..], v => Assert.Equal(Guard, v));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public unsafe void PackA_Double_IsTheRowPanelOfOpA(bool trans)
    {
        const int mr = 8, rows = 5, kc = 11, lda = 20;
        var rng = new Random(3);
        var a = new double[20 * lda];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextDouble();
        var dst = new double[mr * kc];
        fixed (double* pa = a)
        fixed (double* pd = dst)
            GemmPack.PackA(pa, lda, trans, 1, rows, 2, kc, mr, pd);
        for (int p = 0; p < kc; p++)
            for (int r = 0; r < mr; r++)
                Assert.Equal(r >= rows ? 0 : trans ? a[(2 + p) * lda + 1 + r] : a[(1 + r) * lda + 2 + p], dst[p * mr + r]);
    }
}

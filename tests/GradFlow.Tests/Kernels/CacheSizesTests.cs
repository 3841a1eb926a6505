using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

public class CacheSizesTests
{
    [Theory]
    [InlineData("1024K", 1L << 20)]
    [InlineData("48K", 48L << 10)]
    [InlineData("32M", 32L << 20)]
    [InlineData("1G", 1L << 30)]
    [InlineData("524288", 524288L)]
    [InlineData("512k", 512L << 10)]
    public void ParseSize_SysfsSizes_GiveBytes(string text, long bytes) => Assert.Equal(bytes, CacheSizes.ParseSize(text));

    [Theory]
    [InlineData("")]
    [InlineData("K")]
    [InlineData("-5K")]
    [InlineData("0K")]
    [InlineData("1.5M")]
    [InlineData("12 K")]
    [InlineData("big")]
    public void ParseSize_NotASize_GivesNull(string text) => Assert.Null(CacheSizes.ParseSize(text));

    [Fact]
    public void L2Bytes_IsPositive() => Assert.True(CacheSizes.L2Bytes > 0);
}

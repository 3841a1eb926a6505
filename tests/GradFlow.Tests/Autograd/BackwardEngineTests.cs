using GradFlow.Autograd;
using GradFlow.Tensors;

namespace GradFlow.Tests.Autograd;

public class BackwardEngineTests
{
    [Fact]
    public void Backward_ProductOfLeaves_GivesTheOtherFactor()
    {
        var a = Tensor.FromArray([1f, 2f, 3f]);
        var b = Tensor.FromArray([4f, 5f, 6f]);
        a.RequiresGrad = b.RequiresGrad = true;
        (a * b).Sum().Backward();
        Assert.Equal([4f, 5f, 6f], a.Grad!.ToArray());
        Assert.Equal([1f, 2f, 3f], b.Grad!.ToArray());
    }
}

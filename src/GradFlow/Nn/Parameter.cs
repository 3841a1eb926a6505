using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// A learnable tensor owned by a <see cref="Module"/>: a float leaf that requires grad. The
/// module keeps the <see cref="Parameter"/> object; initialisers, optimisers and checkpoint loading
/// change <see cref="Data"/> in place (under <see cref="GradMode.NoGrad"/>), so references held by
/// optimisers and monitors stay valid.
/// </summary>
/// <remarks>Converts implicitly to <see cref="Tensor"/>, so <c>x.Matmul(weight)</c> reads as in PyTorch.</remarks>
public sealed class Parameter
{
    /// <summary>Wraps <paramref name="data"/>, which becomes a leaf that requires grad.</summary>
    /// <exception cref="ArgumentException">when <paramref name="data"/> was produced by an op (not a leaf).</exception>
    public Parameter(Tensor data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!data.IsLeaf)
            throw new ArgumentException($"Parameter: the tensor of shape {Shapes.Format(data.Shape)} was produced by '{data.GradFn}'; pass a leaf (use Detach()).");
        data.RequiresGrad = true;
        Data = data;
    }

    /// <summary>The values (a leaf tensor with <see cref="Tensor.RequiresGrad"/> set).</summary>
    public Tensor Data { get; }

    /// <summary>dL/d(parameter) accumulated by backward passes, or null.</summary>
    public Tensor? Grad
    {
        get => Data.Grad;
        set => Data.Grad = value;
    }

    /// <summary>The shape of <see cref="Data"/>.</summary>
    public ReadOnlySpan<int> Shape => Data.Shape;

    /// <summary>Number of elements.</summary>
    public int Count => Data.Count;

    /// <summary>The parameter as a tensor of the graph.</summary>
    public static implicit operator Tensor(Parameter p) => p.Data;

    /// <inheritdoc />
    public override string ToString() => $"Parameter(shape={Shapes.Format(Data.Shape)})";
}

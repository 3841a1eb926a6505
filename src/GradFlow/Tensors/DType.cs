namespace GradFlow.Tensors;

/// <summary>Element type of a <see cref="Tensor"/>.</summary>
/// <remarks>
/// Float32 is the training type. Float64 exists so that <c>GradCheck</c> can evaluate finite
/// differences in double precision through the very same ops and backward rules.
/// </remarks>
public enum DType
{
    /// <summary>32-bit IEEE 754 (the default).</summary>
    Float32,

    /// <summary>64-bit IEEE 754.</summary>
    Float64,
}

using GradFlow.Autograd;
using GradFlow.Tensors;

namespace GradFlow.Tests.Tensors;

// Shape ops of Tensor: forward results against references computed here by explicit index
// arithmetic (never by other GradFlow ops), float64 finite-difference checks over several shapes
// (size-1 dims, odd sizes 33 and 67 that leave SIMD tails, rank 0..4), explicit backward values
// where the rule matters (scatter into place, accumulation of repeated indices), and the errors
// each op raises for bad input.
public class ShapeOpTests
{
    // ------------------------------------------------------------------ helpers

    private static int Numel(int[] shape)
    {
        int n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    private static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
        return idx;
    }

    private static int Ravel(int[] idx, int[] shape)
    {
        int flat = 0;
        for (int d = 0; d < shape.Length; d++) flat = flat * shape[d] + idx[d];
        return flat;
    }

    /// <summary>Float32 values 0, 1, 2, ... (exact), so every element is distinguishable.</summary>
    private static Tensor Iota(params int[] shape)
    {
        if (shape.Length == 0) return Tensor.Scalar(0);
        var data = new float[Numel(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = i;
        return Tensor.FromArray(data, shape);
    }

    /// <summary>A float64 leaf with values in [-1, 1) that requires grad.</summary>
    private static Tensor Leaf(ulong seed, params int[] shape)
    {
        var t = Tensor.Uniform(new Generator(seed), -1, 1, DType.Float64, shape);
        t.RequiresGrad = true;
        return t;
    }

    private static double[] Values(Tensor t)
    {
        var r = new double[t.Count];
        for (int i = 0; i < r.Length; i++) r[i] = t.GetFlat(i);
        return r;
    }

    // ------------------------------------------------------------------ reshape family

    public static TheoryData<int[], int[], int[]> ReshapeCases => new()
    {
        { [2, 3, 4], [4, -1], [4, 6] },
        { [2, 3, 4], [-1], [24] },
        { [6], [-1, 1, 2], [3, 1, 2] },
        { [1], [], [] },
        { [], [1, -1], [1, 1] },
        { [67], [67, 1], [67, 1] },
        { [2, 0, 3], [0, 5], [0, 5] },
    };

    [Theory]
    [MemberData(nameof(ReshapeCases))]
    public void Reshape_TargetShape_KeepsRowMajorOrder(int[] shape, int[] target, int[] expected)
    {
        var x = Iota(shape);
        var y = x.Reshape(target);
        Assert.Equal(expected, y.Shape.ToArray());
        Assert.Equal(x.ToArray(), y.ToArray());
    }

    public static TheoryData<int[], int, int, int[]> FlattenCases => new()
    {
        { [2, 3, 4], 0, -1, [24] },
        { [2, 3, 4], 1, 2, [2, 12] },
        { [2, 3, 4, 5], 1, 2, [2, 12, 5] },
        { [2, 3, 4], -2, -2, [2, 3, 4] },
        { [], 0, -1, [1] },
    };

    [Theory]
    [MemberData(nameof(FlattenCases))]
    public void Flatten_DimensionRange_MergesThoseDimensions(int[] shape, int start, int end, int[] expected)
    {
        var x = Iota(shape);
        var y = x.Flatten(start, end);
        Assert.Equal(expected, y.Shape.ToArray());
        Assert.Equal(x.ToArray(), y.ToArray());
    }

    [Theory]
    [InlineData(0, new[] { 1, 2, 3 })]
    [InlineData(1, new[] { 2, 1, 3 })]
    [InlineData(2, new[] { 2, 3, 1 })]
    [InlineData(-1, new[] { 2, 3, 1 })]
    [InlineData(-3, new[] { 1, 2, 3 })]
    public void Unsqueeze_Position_InsertsSizeOneDimension(int dim, int[] expected)
    {
        var x = Iota(2, 3);
        var y = x.Unsqueeze(dim);
        Assert.Equal(expected, y.Shape.ToArray());
        Assert.Equal(x.ToArray(), y.ToArray());
    }

    [Theory]
    [InlineData(new[] { 1, 2, 3 }, 0, new[] { 2, 3 })]
    [InlineData(new[] { 2, 1, 3 }, 1, new[] { 2, 3 })]
    [InlineData(new[] { 2, 3, 1 }, -1, new[] { 2, 3 })]
    [InlineData(new[] { 1 }, 0, new int[0])]
    public void Squeeze_SizeOneDimension_RemovesIt(int[] shape, int dim, int[] expected)
    {
        var x = Iota(shape);
        var y = x.Squeeze(dim);
        Assert.Equal(expected, y.Shape.ToArray());
        Assert.Equal(x.ToArray(), y.ToArray());
    }

    // ------------------------------------------------------------------ permute family

    public static TheoryData<int[], int[]> PermuteCases => new()
    {
        { [3, 5], [1, 0] },
        { [2, 3, 4], [2, 0, 1] },
        { [2, 3, 4], [1, 2, 0] },
        { [2, 1, 33], [2, 1, 0] },
        { [2, 3, 4, 5], [3, 1, 0, 2] },
        { [2, 3, 4, 5], [-1, -2, -3, -4] },
        { [67], [0] },
        { [], [] },
    };

    [Theory]
    [MemberData(nameof(PermuteCases))]
    public void Permute_AnyOrder_MatchesIndexArithmetic(int[] shape, int[] dims)
    {
        var x = Iota(shape);
        var y = x.Permute(dims);
        int r = shape.Length;
        var perm = dims.Select(d => d < 0 ? d + r : d).ToArray();
        var outShape = perm.Select(p => shape[p]).ToArray();
        Assert.Equal(outShape, y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var j = Unravel(i, outShape);
            var k = new int[r];
            for (int m = 0; m < r; m++) k[perm[m]] = j[m];
            Assert.Equal(x.GetFlat(Ravel(k, shape)), y.GetFlat(i));
        }
    }

    [Theory]
    [InlineData(new[] { 3, 5 }, 0, 1)]
    [InlineData(new[] { 2, 3, 4 }, 0, 2)]
    [InlineData(new[] { 2, 3, 4, 5 }, -1, 1)]
    [InlineData(new[] { 2, 3, 4 }, 1, 1)]
    public void Transpose_TwoDimensions_SwapsIndices(int[] shape, int dim0, int dim1)
    {
        var x = Iota(shape);
        var y = x.Transpose(dim0, dim1);
        int a = dim0 < 0 ? dim0 + shape.Length : dim0, b = dim1 < 0 ? dim1 + shape.Length : dim1;
        var outShape = (int[])shape.Clone();
        (outShape[a], outShape[b]) = (outShape[b], outShape[a]);
        Assert.Equal(outShape, y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var k = Unravel(i, outShape);
            (k[a], k[b]) = (k[b], k[a]);
            Assert.Equal(x.GetFlat(Ravel(k, shape)), y.GetFlat(i));
        }
    }

    [Fact]
    public void T_Matrix_IsTheTranspose()
    {
        var x = Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        var y = x.T();
        Assert.Equal([3, 2], y.Shape.ToArray());
        Assert.Equal([1f, 4f, 2f, 5f, 3f, 6f], y.ToArray());
    }

    // ------------------------------------------------------------------ slicing

    // Expected positions written out by hand from Python's slice semantics on a dimension of `size`.
    public static TheoryData<int, int, int, int, int[]> SliceCases => new()
    {
        { 10, 0, 10, 1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] },
        { 10, 1, 8, 2, [1, 3, 5, 7] },
        { 10, 0, 10, 3, [0, 3, 6, 9] },
        { 10, -7, 100, 3, [3, 6, 9] },
        { 10, -3, -1, 1, [7, 8] },
        { 10, -100, 2, 1, [0, 1] },
        { 10, 5, 5, 1, [] },
        { 10, 8, 2, 1, [] },
        { 10, 20, 30, 2, [] },
        { 10, 2, -100, 1, [] },
        { 10, 9, 10, 5, [9] },
        { 1, 0, 1, 4, [0] },
        { 33, 0, 33, 32, [0, 32] },
    };

    [Theory]
    [MemberData(nameof(SliceCases))]
    public void Slice_StartEndStep_SelectsPythonSlicePositions(int size, int start, int end, int step, int[] picked)
    {
        for (int dim = 0; dim < 3; dim++)
        {
            var shape = new[] { 2, 3, 4 };
            shape[dim] = size;
            var x = Iota(shape);
            var y = x.Slice(dim, start, end, step);
            var outShape = (int[])shape.Clone();
            outShape[dim] = picked.Length;
            Assert.Equal(outShape, y.Shape.ToArray());
            for (int i = 0; i < y.Count; i++)
            {
                var k = Unravel(i, outShape);
                k[dim] = picked[k[dim]];
                Assert.Equal(x.GetFlat(Ravel(k, shape)), y.GetFlat(i));
            }
        }
    }

    [Fact]
    public void Slice_StepTwo_GradientScattersIntoPlace()
    {
        var x = Tensor.Zeros(DType.Float64, 2, 7);
        x.RequiresGrad = true;
        var y = x.Slice(1, 1, 7, 2); // columns 1, 3, 5
        y.Backward(Tensor.FromArray([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], 2, 3));
        Assert.Equal(
            [0, 10, 0, 20, 0, 30, 0,
             0, 40, 0, 50, 0, 60, 0],
            x.Grad!.ToDoubleArray());
    }

    [Theory]
    [InlineData(1, 0, 3, new[] { 0, 1, 2 })]
    [InlineData(1, 2, 3, new[] { 2, 3, 4 })]
    [InlineData(1, -2, 2, new[] { 3, 4 })]
    [InlineData(1, 5, 0, new int[0])]
    [InlineData(-1, 1, 1, new[] { 1 })]
    public void Narrow_StartLength_SelectsContiguousRange(int dim, int start, int length, int[] picked)
    {
        var x = Iota(3, 5);
        var y = x.Narrow(dim, start, length);
        Assert.Equal([3, picked.Length], y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var k = Unravel(i, [3, picked.Length]);
            Assert.Equal(x.GetFlat(k[0] * 5 + picked[k[1]]), y.GetFlat(i));
        }
    }

    [Fact]
    public void Split_Sizes_PartsCoverTheDimensionInOrder()
    {
        var x = Iota(2, 7, 3);
        var parts = x.Split([2, 0, 4, 1], dim: 1);
        Assert.Equal(4, parts.Length);
        int at = 0;
        foreach (var (p, size) in parts.Zip(new[] { 2, 0, 4, 1 }))
        {
            Assert.Equal([2, size, 3], p.Shape.ToArray());
            for (int i = 0; i < p.Count; i++)
            {
                var k = Unravel(i, [2, size, 3]);
                Assert.Equal((double)((k[0] * 7 + at + k[1]) * 3 + k[2]), p.GetFlat(i));
            }
            at += size;
        }
    }

    [Theory]
    [InlineData(7, 3, new[] { 3, 3, 1 })]
    [InlineData(6, 3, new[] { 3, 3 })]
    [InlineData(5, 9, new[] { 5 })]
    [InlineData(67, 32, new[] { 32, 32, 3 })]
    public void Split_ChunkSize_LastPieceTakesTheRemainder(int size, int chunk, int[] sizes)
    {
        var x = Iota(size, 2);
        var parts = x.Split(chunk, dim: -2);
        Assert.Equal(sizes, parts.Select(p => p.Size(0)).ToArray());
        int at = 0;
        foreach (var p in parts)
        {
            for (int i = 0; i < p.Count; i++) Assert.Equal((double)(at * 2 + i), p.GetFlat(i));
            at += p.Size(0);
        }
    }

    // ------------------------------------------------------------------ concat / stack

    public static TheoryData<int[], int, int[]> ConcatCases => new()
    {
        { [2, 3, 4], 0, [1, 3, 2] },
        { [2, 3, 4], 1, [2, 1, 5] },
        { [2, 3, 4], 2, [3, 1, 33] },
        { [2, 3, 4], -1, [1, 2, 3] },
        { [5], 0, [1, 67, 2] },
        { [2, 3, 4], 1, [0, 2, 1] },
    };

    [Theory]
    [MemberData(nameof(ConcatCases))]
    public void Concat_ThreeInputsOfDifferentSizes_PlacesEachBlockAtItsOffset(int[] baseShape, int dim, int[] sizes)
    {
        int d = dim < 0 ? dim + baseShape.Length : dim;
        var inputs = sizes.Select((s, n) =>
        {
            var shape = (int[])baseShape.Clone();
            shape[d] = s;
            var data = Enumerable.Range(0, Numel(shape)).Select(i => (float)(1000 * n + i)).ToArray();
            return Tensor.FromArray(data, shape);
        }).ToArray();
        var y = Tensor.Concat(inputs, dim);
        var outShape = (int[])baseShape.Clone();
        outShape[d] = sizes.Sum();
        Assert.Equal(outShape, y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var k = Unravel(i, outShape);
            int which = 0, pos = k[d];
            while (pos >= sizes[which]) pos -= sizes[which++];
            k[d] = pos;
            Assert.Equal(inputs[which].GetFlat(Ravel(k, inputs[which].Shape.ToArray())), y.GetFlat(i));
        }
    }

    [Theory]
    [InlineData(new[] { 2, 3 }, 0)]
    [InlineData(new[] { 2, 3 }, 1)]
    [InlineData(new[] { 2, 3 }, 2)]
    [InlineData(new[] { 2, 3 }, -1)]
    [InlineData(new int[0], 0)]
    [InlineData(new[] { 33 }, 1)]
    public void Stack_EqualShapes_AddsNewDimension(int[] shape, int dim)
    {
        var inputs = Enumerable.Range(0, 3).Select(n =>
        {
            if (shape.Length == 0) return Tensor.Scalar(100 * n);
            var data = Enumerable.Range(0, Numel(shape)).Select(i => (float)(100 * n + i)).ToArray();
            return Tensor.FromArray(data, shape);
        }).ToArray();
        var y = Tensor.Stack(inputs, dim);
        int d = dim < 0 ? dim + shape.Length + 1 : dim;
        var outShape = shape.ToList();
        outShape.Insert(d, 3);
        Assert.Equal(outShape.ToArray(), y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var k = Unravel(i, outShape.ToArray()).ToList();
            int which = k[d];
            k.RemoveAt(d);
            Assert.Equal(inputs[which].GetFlat(Ravel(k.ToArray(), shape)), y.GetFlat(i));
        }
    }

    // ------------------------------------------------------------------ indexing

    [Theory]
    [InlineData(0, new[] { 2, 0, 2, 3 })]
    [InlineData(1, new[] { 4, 4, 0 })]
    [InlineData(2, new[] { 1 })]
    [InlineData(-1, new int[0])]
    public void IndexSelect_Indices_PicksEntriesAlongDimension(int dim, int[] idx)
    {
        int[] shape = [4, 5, 3];
        var x = Iota(shape);
        var y = x.IndexSelect(dim, IndexTensor.FromArray(idx));
        int d = dim < 0 ? dim + 3 : dim;
        var outShape = (int[])shape.Clone();
        outShape[d] = idx.Length;
        Assert.Equal(outShape, y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var k = Unravel(i, outShape);
            k[d] = idx[k[d]];
            Assert.Equal(x.GetFlat(Ravel(k, shape)), y.GetFlat(i));
        }
    }

    [Fact]
    public void IndexSelect_RepeatedIndices_GradientAccumulates()
    {
        var x = Tensor.Zeros(DType.Float64, 2, 4);
        x.RequiresGrad = true;
        var y = x.IndexSelect(1, IndexTensor.FromArray([3, 1, 3, 3]));
        y.Backward(Tensor.FromArray([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0], 2, 4));
        // Column 3 receives g[:, 0] + g[:, 2] + g[:, 3]; column 1 receives g[:, 1]; columns 0 and 2 nothing.
        Assert.Equal([0, 2, 0, 13, 0, 32, 0, 208], x.Grad!.ToDoubleArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(-1)]
    public void Gather_IndexTensor_TakesNamedPositions(int dim)
    {
        int[] shape = [3, 4, 5];
        int d = dim < 0 ? dim + 3 : dim;
        int[] ishape = [2, 3, 2]; // no larger than x outside d
        var x = Iota(shape);
        var idxData = Enumerable.Range(0, Numel(ishape)).Select(i => (i * 7 + 1) % shape[d]).ToArray();
        var y = x.Gather(dim, IndexTensor.FromArray(idxData, ishape));
        Assert.Equal(ishape, y.Shape.ToArray());
        for (int i = 0; i < y.Count; i++)
        {
            var k = Unravel(i, ishape);
            k[d] = idxData[i];
            Assert.Equal(x.GetFlat(Ravel(k, shape)), y.GetFlat(i));
        }
    }

    [Fact]
    public void Gather_RepeatedPositions_GradientAccumulates()
    {
        var x = Tensor.Zeros(DType.Float64, 2, 3);
        x.RequiresGrad = true;
        var y = x.Gather(1, IndexTensor.FromArray([2, 2, 0, 1, 1, 1], 2, 3));
        y.Backward(Tensor.FromArray([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], 2, 3));
        Assert.Equal([4, 0, 3, 0, 56, 0], x.Grad!.ToDoubleArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(-1)]
    public void ScatterAdd_RepeatedPositions_Accumulate(int dim)
    {
        int[] shape = [3, 4];
        int d = dim < 0 ? dim + 2 : dim;
        int[] ishape = [3, 3];
        var x = Iota(shape);
        var idxData = new[] { 0, 0, 1, 2, 2, 2, 1, 0, 1 }.Select(v => v % shape[d]).ToArray();
        var src = Tensor.FromArray(Enumerable.Range(0, 9).Select(i => (float)(100 * (i + 1))).ToArray(), ishape);
        var y = x.ScatterAdd(dim, IndexTensor.FromArray(idxData, ishape), src);
        var expected = Values(x);
        for (int i = 0; i < idxData.Length; i++)
        {
            var k = Unravel(i, ishape);
            k[d] = idxData[i];
            expected[Ravel(k, shape)] += 100 * (i + 1);
        }
        Assert.Equal(shape, y.Shape.ToArray());
        Assert.Equal(expected, Values(y));
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (double)i), Values(x)); // input untouched
    }

    [Fact]
    public void ScatterAdd_Backward_SourceGetsGradientAtItsPositions()
    {
        var x = Tensor.Zeros(DType.Float64, 2, 3);
        var src = Tensor.Zeros(DType.Float64, 2, 2);
        x.RequiresGrad = src.RequiresGrad = true;
        var y = x.ScatterAdd(1, IndexTensor.FromArray([2, 2, 0, 1], 2, 2), src);
        var g = Tensor.FromArray([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], 2, 3);
        y.Backward(g);
        Assert.Equal([1, 2, 4, 8, 16, 32], x.Grad!.ToDoubleArray());
        Assert.Equal([4, 4, 8, 16], src.Grad!.ToDoubleArray());
    }

    // ------------------------------------------------------------------ expand, clone, to

    public static TheoryData<int[], int[]> ExpandCases => new()
    {
        { [1], [5] },
        { [3, 1], [3, 4] },
        { [1, 3], [2, 3] },
        { [2, 1, 33], [4, 2, 5, 33] },
        { [], [2, 3] },
        { [2, 3], [2, 3] },
        { [1, 1], [67, 1] },
    };

    [Theory]
    [MemberData(nameof(ExpandCases))]
    public void Expand_SizeOneDimensions_RepeatTheirEntry(int[] shape, int[] target)
    {
        var x = shape.Length == 0 ? Tensor.Scalar(7) : Iota(shape);
        var y = x.Expand(target);
        Assert.Equal(target, y.Shape.ToArray());
        int lead = target.Length - shape.Length;
        for (int i = 0; i < y.Count; i++)
        {
            var j = Unravel(i, target);
            var k = new int[shape.Length];
            for (int m = 0; m < shape.Length; m++) k[m] = shape[m] == 1 ? 0 : j[m + lead];
            Assert.Equal(x.GetFlat(Ravel(k, shape)), y.GetFlat(i));
        }
    }

    [Fact]
    public void Expand_Backward_SumsOverRepeatedEntries()
    {
        var x = Tensor.Zeros(DType.Float64, 2, 1);
        x.RequiresGrad = true;
        x.Expand(3, 2, 2).Backward(Tensor.FromArray(Enumerable.Range(1, 12).Select(i => (double)i).ToArray(), 3, 2, 2));
        // x[0] collects positions (b, 0, c): 1+2+5+6+9+10; x[1] collects (b, 1, c): 3+4+7+8+11+12.
        Assert.Equal([33, 45], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Clone_Copy_HasEqualValuesAndOwnStorage()
    {
        var x = Iota(3, 67);
        var y = x.Clone();
        Assert.Equal(x.Shape.ToArray(), y.Shape.ToArray());
        Assert.Equal(x.ToArray(), y.ToArray());
        y.FillInPlace(-1);
        Assert.Equal(Enumerable.Range(0, 201).Select(i => (float)i), x.ToArray());
    }

    private static readonly double[] ConversionValues = BuildConversionValues();

    private static double[] BuildConversionValues()
    {
        var v = new List<double>
        {
            0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3, -2.0 / 3, 1e-40, -1e-45, 1e-50, 3.4028235e38, 3.5e38, -1e300,
            double.PositiveInfinity, double.NegativeInfinity, double.NaN, 16777217.0, 1.0 + 1e-9, Math.PI, 65504.0,
        };
        for (int i = v.Count; i < 67; i++) v.Add(Math.Sin(i) * Math.Pow(10, i % 9 - 4));
        return v.ToArray();
    }

    [Fact]
    public void To_Float64ToFloat32_RoundsEachValueToNearest()
    {
        var x = Tensor.FromArray(ConversionValues, 67);
        var y = x.To(DType.Float32);
        Assert.Equal(DType.Float32, y.DType);
        Assert.Equal([67], y.Shape.ToArray());
        var got = y.ToArray();
        for (int i = 0; i < ConversionValues.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits((float)ConversionValues[i]) == BitConverter.SingleToInt32Bits(got[i]),
                $"element {i}: {ConversionValues[i]:R} became {got[i]:R}, expected {(float)ConversionValues[i]:R}");
    }

    [Fact]
    public void To_Float32ToFloat64_IsExact()
    {
        var data = ConversionValues.Select(v => (float)v).ToArray();
        var y = Tensor.FromArray(data, 67).To(DType.Float64);
        Assert.Equal(DType.Float64, y.DType);
        var got = y.ToDoubleArray();
        for (int i = 0; i < data.Length; i++)
            Assert.Equal(BitConverter.DoubleToInt64Bits(data[i]), BitConverter.DoubleToInt64Bits(got[i]));
    }

    [Fact]
    public void To_Backward_ConvertsGradientToTheInputType()
    {
        var x = Tensor.Zeros(3);
        x.RequiresGrad = true;
        var y = x.To(DType.Float64);
        y.Backward(Tensor.FromArray([0.1, 2.5, -1e-3]));
        Assert.Equal(DType.Float32, x.Grad!.DType);
        Assert.Equal([0.1f, 2.5f, -1e-3f], x.Grad.ToArray());

        var z = Tensor.Zeros(DType.Float64, 2);
        z.RequiresGrad = true;
        z.To(DType.Float32).Backward(Tensor.FromArray([0.5f, -4f]));
        Assert.Equal(DType.Float64, z.Grad!.DType);
        Assert.Equal([0.5, -4.0], z.Grad.ToDoubleArray());
    }

    // ------------------------------------------------------------------ gradient checks

    /// <summary>Single-input shape ops by name; each entry below is valid for the shapes it is paired with.</summary>
    private static Tensor ApplyUnary(string op, Tensor t)
    {
        int r = t.Rank;
        int[] shape = t.Shape.ToArray();
        return op switch
        {
            "reshape-reversed" => t.Reshape(shape.Reverse().ToArray()),
            "reshape-infer" => t.Reshape(-1, 1),
            "flatten" => t.Flatten(),
            "flatten-middle" => t.Flatten(1, 2),
            "unsqueeze-first" => t.Unsqueeze(0),
            "unsqueeze-last" => t.Unsqueeze(-1),
            "squeeze" => t.Squeeze(Array.IndexOf(shape, 1)),
            "permute-reverse" => t.Permute(Enumerable.Range(0, r).Reverse().ToArray()),
            "permute-rotate" => t.Permute(Enumerable.Range(1, r).Select(i => i % r).ToArray()),
            "transpose" => t.Transpose(0, -1),
            "T" => t.T(),
            "slice-step2" => t.Slice(-1, 1, int.MaxValue, 2),
            "slice-negative" => t.Slice(0, -3, -1),
            "slice-step3-clamped" => t.Slice(0, -1000, 1000, 3),
            "narrow" => t.Narrow(-1, 1, shape[^1] - 2),
            "split-sizes-last" => t.Split([1, shape[0] - 1])[1],
            "split-chunk-last" => t.Split(2, dim: -1)[^1],
            "split-chunk-first" => t.Split(2, dim: -1)[0],
            "index-select" => t.IndexSelect(0, IndexTensor.FromArray([shape[0] - 1, 0, shape[0] - 1, shape[0] - 1])),
            "gather" => t.Gather(-1, GatherIndex(shape)),
            "expand" => t.Expand([3, .. shape.Select(s => s == 1 ? 4 : s)]),
            "clone" => t.Clone(),
            "to-same" => t.To(DType.Float64),
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown op"),
        };
    }

    /// <summary>An index of x's shape whose last-dimension positions repeat (so gradients accumulate).</summary>
    private static IndexTensor GatherIndex(int[] shape)
    {
        int n = Numel(shape);
        return IndexTensor.FromArray(Enumerable.Range(0, n).Select(i => (i * 5 / 3) % shape[^1]).ToArray(), shape);
    }

    public static TheoryData<string, int[]> UnaryGradCases => new()
    {
        { "reshape-reversed", [] },
        { "reshape-reversed", [7] },
        { "reshape-reversed", [2, 1, 33] },
        { "reshape-infer", [3, 5] },
        { "reshape-infer", [2, 3, 4, 5] },
        { "flatten", [] },
        { "flatten", [2, 1, 33] },
        { "flatten-middle", [2, 3, 4, 5] },
        { "unsqueeze-first", [] },
        { "unsqueeze-first", [67] },
        { "unsqueeze-last", [3, 5] },
        { "squeeze", [1] },
        { "squeeze", [2, 1, 33] },
        { "squeeze", [3, 5, 1] },
        { "permute-reverse", [3, 5] },
        { "permute-reverse", [2, 1, 33] },
        { "permute-rotate", [2, 3, 4, 5] },
        { "transpose", [67] },
        { "transpose", [2, 3, 4, 5] },
        { "T", [3, 5] },
        { "T", [1, 33] },
        { "slice-step2", [7] },
        { "slice-step2", [2, 1, 33] },
        { "slice-step2", [2, 3, 4, 5] },
        { "slice-negative", [7, 3] },
        { "slice-step3-clamped", [67] },
        { "slice-step3-clamped", [7, 1, 2] },
        { "narrow", [3, 5] },
        { "narrow", [2, 1, 33] },
        { "split-sizes-last", [7] },
        { "split-sizes-last", [3, 5] },
        { "split-chunk-last", [2, 1, 33] },
        { "split-chunk-first", [2, 3, 4, 5] },
        { "index-select", [7] },
        { "index-select", [3, 5] },
        { "index-select", [2, 1, 33] },
        { "gather", [7] },
        { "gather", [3, 5] },
        { "gather", [2, 3, 4, 5] },
        { "expand", [] },
        { "expand", [1] },
        { "expand", [3, 1] },
        { "expand", [2, 1, 33] },
        { "clone", [] },
        { "clone", [2, 1, 33] },
        { "to-same", [3, 5] },
    };

    [Theory]
    [MemberData(nameof(UnaryGradCases))]
    public void UnaryShapeOp_Backward_MatchesFiniteDifferences(string op, int[] shape)
    {
        GradCheck.Assert(t => ApplyUnary(op, t[0]), [Leaf((ulong)shape.Sum() + 1, shape)]);
    }

    public static TheoryData<int[], int, int[]> ConcatGradCases => new()
    {
        { [7], 0, [1, 2, 4] },
        { [3, 5], 0, [1, 3, 2] },
        { [3, 5], 1, [2, 1, 5] },
        { [2, 1, 33], -1, [33, 1, 2] },
        { [2, 3, 4, 5], 2, [1, 4, 2] },
    };

    [Theory]
    [MemberData(nameof(ConcatGradCases))]
    public void Concat_Backward_MatchesFiniteDifferences(int[] baseShape, int dim, int[] sizes)
    {
        int d = dim < 0 ? dim + baseShape.Length : dim;
        var inputs = sizes.Select((s, n) =>
        {
            var shape = (int[])baseShape.Clone();
            shape[d] = s;
            return Leaf((ulong)(n + 10), shape);
        }).ToArray();
        GradCheck.Assert(t => Tensor.Concat(t, dim), inputs);
    }

    [Fact]
    public void Concat_InputWithoutGrad_GetsNoGradientAndOthersDo()
    {
        var a = Leaf(1, 2, 3);
        var b = Tensor.Zeros(DType.Float64, 2, 2);
        GradCheck.Assert(t => Tensor.Concat(t, 1), [a, b]);
    }

    [Theory]
    [InlineData(new int[0], 0)]
    [InlineData(new[] { 7 }, 1)]
    [InlineData(new[] { 3, 5 }, 1)]
    [InlineData(new[] { 2, 1, 33 }, -1)]
    [InlineData(new[] { 2, 3, 4 }, 0)]
    public void Stack_Backward_MatchesFiniteDifferences(int[] shape, int dim)
    {
        GradCheck.Assert(t => Tensor.Stack(t, dim), [Leaf(1, shape), Leaf(2, shape), Leaf(3, shape)]);
    }

    [Theory]
    [InlineData(new[] { 7 }, 0)]
    [InlineData(new[] { 3, 5 }, 1)]
    [InlineData(new[] { 2, 1, 33 }, 2)]
    [InlineData(new[] { 2, 3, 4, 5 }, -2)]
    public void ScatterAdd_Backward_MatchesFiniteDifferences(int[] shape, int dim)
    {
        int d = dim < 0 ? dim + shape.Length : dim;
        var ishape = (int[])shape.Clone();
        ishape[d] = shape[d] + 3; // more entries than positions: repeats are certain
        var idx = IndexTensor.FromArray(Enumerable.Range(0, Numel(ishape)).Select(i => (i * 7 + 2) % shape[d]).ToArray(), ishape);
        GradCheck.Assert(t => t[0].ScatterAdd(dim, idx, t[1]), [Leaf(4, shape), Leaf(5, ishape)]);
    }

    // ------------------------------------------------------------------ errors

    private static Tensor X23 => Iota(2, 3);

    /// <summary>Bad input per op: the action, and fragments the message must contain (op name first).</summary>
    private static readonly Dictionary<string, (Action Act, string[] Fragments)> Errors = new()
    {
        ["reshape -1 twice"] = (() => X23.Reshape(-1, -1), ["reshape:", "[-1, -1]"]),
        ["reshape count mismatch"] = (() => X23.Reshape(4, 2), ["reshape:", "[2, 3]", "[4, 2]"]),
        ["reshape infer impossible"] = (() => X23.Reshape(4, -1), ["reshape:", "[2, 3]", "[4, -1]"]),
        ["reshape negative size"] = (() => X23.Reshape(-2, -3), ["reshape:", "-2"]),
        ["flatten bad axis"] = (() => X23.Flatten(3), ["flatten:", "3", "rank 2"]),
        ["flatten start after end"] = (() => Iota(2, 3, 4).Flatten(2, 1), ["flatten:", "2", "1"]),
        ["unsqueeze bad axis"] = (() => X23.Unsqueeze(4), ["unsqueeze:", "4"]),
        ["unsqueeze bad negative axis"] = (() => X23.Unsqueeze(-4), ["unsqueeze:", "-4"]),
        ["squeeze non-1 dim"] = (() => X23.Squeeze(1), ["squeeze:", "[2, 3]", "3"]),
        ["squeeze bad axis"] = (() => X23.Squeeze(2), ["squeeze:", "2", "rank 2"]),
        ["permute repeated dim"] = (() => X23.Permute(0, -2), ["permute:", "[0, -2]"]),
        ["permute too few dims"] = (() => X23.Permute(0), ["permute:", "[2, 3]"]),
        ["permute too many dims"] = (() => X23.Permute(0, 1, 2), ["permute:", "[2, 3]"]),
        ["permute bad axis"] = (() => X23.Permute(0, 2), ["permute:", "2"]),
        ["transpose bad axis"] = (() => X23.Transpose(0, 5), ["transpose:", "5"]),
        ["T on rank 3"] = (() => Iota(2, 3, 4).T(), ["T:", "[2, 3, 4]"]),
        ["T on rank 1"] = (() => Iota(4).T(), ["T:", "[4]"]),
        ["slice step 0"] = (() => X23.Slice(1, 0, 3, 0), ["slice:", "0"]),
        ["slice step negative"] = (() => X23.Slice(1, 0, 3, -1), ["slice:", "-1"]),
        ["slice bad axis"] = (() => X23.Slice(2, 0, 1), ["slice:", "2"]),
        ["narrow past end"] = (() => X23.Narrow(1, 2, 2), ["narrow:", "[2, 3]", "2"]),
        ["narrow negative length"] = (() => X23.Narrow(1, 0, -1), ["narrow:", "-1"]),
        ["narrow start before beginning"] = (() => X23.Narrow(1, -4, 1), ["narrow:", "-4"]),
        ["narrow bad axis"] = (() => X23.Narrow(2, 0, 1), ["narrow:", "2"]),
        ["split sizes do not add up"] = (() => X23.Split([1, 1], 1), ["split:", "[1, 1]", "3"]),
        ["split negative size"] = (() => X23.Split([4, -1], 1), ["split:", "[4, -1]"]),
        ["split chunk 0"] = (() => X23.Split(0, 1), ["split:", "0"]),
        ["split bad axis"] = (() => X23.Split(1, 2), ["split:", "2"]),
        ["concat empty list"] = (() => Tensor.Concat([], 0), ["concat:"]),
        ["concat shape mismatch"] = (() => Tensor.Concat([X23, Iota(3, 4)], 1), ["concat:", "[3, 4]", "[2, 3]"]),
        ["concat rank mismatch"] = (() => Tensor.Concat([X23, Iota(2, 3, 1)], 0), ["concat:", "[2, 3, 1]", "[2, 3]"]),
        ["concat bad axis"] = (() => Tensor.Concat([X23, X23], 2), ["concat:", "2"]),
        ["concat dtype mismatch"] = (() => Tensor.Concat([X23, X23.To(DType.Float64)], 0), ["concat:", "Float64"]),
        ["stack empty list"] = (() => Tensor.Stack([], 0), ["stack:"]),
        ["stack shape mismatch"] = (() => Tensor.Stack([X23, Iota(3, 2)], 0), ["stack:", "[2, 3]", "[3, 2]"]),
        ["stack bad axis"] = (() => Tensor.Stack([X23, X23], 3), ["stack:", "3"]),
        ["index_select index too large"] = (() => X23.IndexSelect(1, IndexTensor.FromArray([0, 3])), ["index_select:", "3"]),
        ["index_select negative index"] = (() => X23.IndexSelect(0, IndexTensor.FromArray([-1])), ["index_select:", "-1"]),
        ["index_select 2-D index"] = (() => X23.IndexSelect(0, IndexTensor.FromArray([0, 1], 1, 2)), ["index_select:", "[1, 2]"]),
        ["index_select bad axis"] = (() => X23.IndexSelect(2, IndexTensor.FromArray([0])), ["index_select:", "2"]),
        ["gather index too large"] = (() => X23.Gather(1, IndexTensor.FromArray([0, 3], 2, 1)), ["gather:", "3"]),
        ["gather rank mismatch"] = (() => X23.Gather(1, IndexTensor.FromArray([0, 1])), ["gather:", "[2]", "[2, 3]"]),
        ["gather index larger than x"] = (() => X23.Gather(1, IndexTensor.FromArray([0, 0, 0], 3, 1)), ["gather:", "[3, 1]", "[2, 3]"]),
        ["scatter_add source shape differs"] = (() => X23.ScatterAdd(1, IndexTensor.FromArray([0, 1], 2, 1), Iota(2, 2)), ["scatter_add:", "[2, 1]", "[2, 2]"]),
        ["scatter_add index too large"] = (() => X23.ScatterAdd(1, IndexTensor.FromArray([0, 5], 2, 1), Iota(2, 1)), ["scatter_add:", "5"]),
        ["scatter_add dtype mismatch"] = (() => X23.ScatterAdd(1, IndexTensor.FromArray([0, 1], 2, 1), Iota(2, 1).To(DType.Float64)), ["scatter_add:", "Float64"]),
        ["expand incompatible"] = (() => X23.Expand(2, 4), ["expand:", "[2, 3]", "[2, 4]"]),
        ["expand fewer dims"] = (() => X23.Expand(3), ["expand:", "[2, 3]", "[3]"]),
    };

    public static TheoryData<string> ErrorCases => new(Errors.Keys);

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public void ShapeOp_BadInput_ThrowsArgumentExceptionNamingOpAndValue(string name)
    {
        var (act, fragments) = Errors[name];
        var ex = Assert.ThrowsAny<ArgumentException>(act);
        foreach (var f in fragments) Assert.Contains(f, ex.Message);
    }
}

using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

// Shape ops: reshape (shares storage), permute/transpose, slicing, concatenation, indexing.
// Every op but Reshape copies into a new contiguous tensor; the backward rules route the
// gradient back to the positions it came from.
public sealed partial class Tensor
{
    /// <summary>
    /// The same elements with a new shape (one dimension may be -1 and is inferred). Shares storage.
    /// Backward: g reshaped back.
    /// </summary>
    public Tensor Reshape(params int[] shape)
    {
        var x = this;
        var y = ReshapeRaw(InferShape(shape));
        return NeedsGrad(x) ? y.Record("reshape", [x], g => [g.ReshapeRaw(x._shape)]) : y;
    }

    /// <summary>Flattens dimensions <paramref name="startDim"/>..<paramref name="endDim"/> into one.</summary>
    public Tensor Flatten(int startDim = 0, int endDim = -1)
    {
        if (Rank == 0) return Reshape(1);
        int s = Shapes.Axis("flatten", startDim, Rank), e = Shapes.Axis("flatten", endDim, Rank);
        if (s > e) throw new ArgumentException($"flatten: startDim {startDim} comes after endDim {endDim}.");
        var shape = new List<int>();
        for (int i = 0; i < s; i++) shape.Add(_shape[i]);
        int p = 1;
        for (int i = s; i <= e; i++) p *= _shape[i];
        shape.Add(p);
        for (int i = e + 1; i < Rank; i++) shape.Add(_shape[i]);
        return Reshape(shape.ToArray());
    }

    /// <summary>Inserts a dimension of size 1 at <paramref name="dim"/>.</summary>
    public Tensor Unsqueeze(int dim)
    {
        int d = Shapes.Axis("unsqueeze", dim, Rank + 1);
        var shape = _shape.ToList();
        shape.Insert(d, 1);
        return Reshape(shape.ToArray());
    }

    /// <summary>Removes dimension <paramref name="dim"/>, which must have size 1.</summary>
    public Tensor Squeeze(int dim)
    {
        int d = Shapes.Axis("squeeze", dim, Rank);
        if (_shape[d] != 1) throw new ArgumentException($"squeeze: dimension {dim} of shape {Shapes.Format(_shape)} has size {_shape[d]}, not 1.");
        var shape = _shape.ToList();
        shape.RemoveAt(d);
        return Reshape(shape.ToArray());
    }

    internal Tensor ReshapeRaw(int[] shape)
    {
        if (Shapes.Numel("reshape", shape) != Count)
            throw new ArgumentException($"reshape: cannot view shape {Shapes.Format(_shape)} ({Count} elements) as {Shapes.Format(shape)}.");
        return View(shape);
    }

    private int[] InferShape(int[] shape)
    {
        int infer = -1;
        long known = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"reshape: only one dimension can be -1 in {Shapes.Format(shape)}.");
                infer = i;
            }
            else if (shape[i] < 0) throw new ArgumentException($"reshape: invalid dimension {shape[i]} in {Shapes.Format(shape)}.");
            else known *= shape[i];
        }
        var result = (int[])shape.Clone();
        if (infer >= 0)
        {
            if (known == 0 || Count % known != 0)
                throw new ArgumentException($"reshape: cannot view shape {Shapes.Format(_shape)} ({Count} elements) as {Shapes.Format(shape)}.");
            result[infer] = (int)(Count / known);
        }
        if (Shapes.Numel("reshape", result) != Count)
            throw new ArgumentException($"reshape: cannot view shape {Shapes.Format(_shape)} ({Count} elements) as {Shapes.Format(shape)}.");
        return result;
    }

    /// <summary>Reorders dimensions: output dimension i is input dimension <paramref name="dims"/>[i]. Backward: the inverse permutation.</summary>
    public Tensor Permute(params int[] dims)
    {
        var x = this;
        if (dims.Length != Rank)
            throw new ArgumentException($"permute: {dims.Length} dimensions given for a tensor of shape {Shapes.Format(_shape)}.");
        var perm = new int[Rank];
        var seen = new bool[Rank];
        for (int i = 0; i < Rank; i++)
        {
            perm[i] = Shapes.Axis("permute", dims[i], Rank);
            if (seen[perm[i]]) throw new ArgumentException($"permute: dimension {dims[i]} repeats in {Shapes.Format(dims)}.");
            seen[perm[i]] = true;
        }
        var y = PermuteRaw(x, perm);
        if (!NeedsGrad(x)) return y;
        var inverse = new int[Rank];
        for (int i = 0; i < Rank; i++) inverse[perm[i]] = i;
        return y.Record("permute", [x], g => [PermuteRaw(g, inverse)]);
    }

    /// <summary>Swaps two dimensions.</summary>
    public Tensor Transpose(int dim0, int dim1)
    {
        int a = Shapes.Axis("transpose", dim0, Rank), b = Shapes.Axis("transpose", dim1, Rank);
        var perm = Enumerable.Range(0, Rank).ToArray();
        (perm[a], perm[b]) = (perm[b], perm[a]);
        return Permute(perm);
    }

    /// <summary>The transpose of a 2-D tensor.</summary>
    public Tensor T()
    {
        if (Rank != 2) throw new ArgumentException($"T: expects a 2-D tensor, got shape {Shapes.Format(_shape)}; use Transpose or Permute.");
        return Transpose(0, 1);
    }

    internal static Tensor PermuteRaw(Tensor x, int[] perm)
    {
        var strides = Shapes.Strides(x._shape);
        var shape = new int[x.Rank];
        var pstrides = new int[x.Rank];
        for (int i = 0; i < x.Rank; i++)
        {
            shape[i] = x._shape[perm[i]];
            pstrides[i] = strides[perm[i]];
        }
        var y = Uninitialized("permute", x, shape);
        if (x.Storage is float[]) BroadcastKernels.Gather(x.Span<float>(), pstrides, y.Span<float>(), shape);
        else BroadcastKernels.Gather(x.Span<double>(), pstrides, y.Span<double>(), shape);
        return y;
    }

    /// <summary>
    /// Elements <paramref name="start"/> to <paramref name="end"/> (exclusive) of dimension
    /// <paramref name="dim"/> taking every <paramref name="step"/>-th (negative start/end count from
    /// the end; bounds are clamped as in Python). Backward: g scattered into zeros at those positions.
    /// </summary>
    public Tensor Slice(int dim, int start, int end, int step = 1)
    {
        var x = this;
        int d = Shapes.Axis("slice", dim, Rank);
        if (step <= 0) throw new ArgumentException($"slice: step must be positive, got {step}.");
        int size = _shape[d];
        int s = Math.Clamp(start < 0 ? start + size : start, 0, size);
        int e = Math.Clamp(end < 0 ? end + size : end, 0, size);
        int len = e > s ? (e - s + step - 1) / step : 0;
        var shape = (int[])_shape.Clone();
        shape[d] = len;
        var strides = Shapes.Strides(_shape);
        int offset = s * strides[d];
        var viewStrides = (int[])strides.Clone();
        viewStrides[d] *= step;
        var y = Uninitialized("slice", x, shape);
        if (y.Count > 0)
        {
            if (x.Storage is float[]) BroadcastKernels.Gather(x.Span<float>()[offset..], viewStrides, y.Span<float>(), shape);
            else BroadcastKernels.Gather(x.Span<double>()[offset..], viewStrides, y.Span<double>(), shape);
        }
        if (!NeedsGrad(x)) return y;
        return y.Record("slice", [x], g =>
        {
            var dx = ZerosOf(x, x._shape);
            if (g.Count > 0)
            {
                if (dx.Storage is float[]) BroadcastKernels.AddStrided(g.Span<float>(), dx.Span<float>()[offset..], viewStrides, shape);
                else BroadcastKernels.AddStrided(g.Span<double>(), dx.Span<double>()[offset..], viewStrides, shape);
            }
            return [dx];
        });
    }

    /// <summary><paramref name="length"/> elements of dimension <paramref name="dim"/> from <paramref name="start"/> (as <c>torch.narrow</c>; no clamping).</summary>
    public Tensor Narrow(int dim, int start, int length)
    {
        int d = Shapes.Axis("narrow", dim, Rank);
        int s = start < 0 ? start + _shape[d] : start;
        if (s < 0 || length < 0 || s + length > _shape[d])
            throw new ArgumentException($"narrow: start {start} with length {length} does not fit dimension {dim} of size {_shape[d]} (shape {Shapes.Format(_shape)}).");
        return Slice(d, s, s + length);
    }

    /// <summary>Splits into pieces of the given sizes along <paramref name="dim"/> (sizes must add up to that dimension).</summary>
    public Tensor[] Split(int[] sizes, int dim = 0)
    {
        int d = Shapes.Axis("split", dim, Rank);
        if (sizes.Any(s => s < 0) || sizes.Sum() != _shape[d])
            throw new ArgumentException($"split: sizes {Shapes.Format(sizes)} do not add up to dimension {dim} of size {_shape[d]}.");
        var parts = new Tensor[sizes.Length];
        int at = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            parts[i] = Narrow(d, at, sizes[i]);
            at += sizes[i];
        }
        return parts;
    }

    /// <summary>Splits into pieces of <paramref name="splitSize"/> along <paramref name="dim"/> (the last may be smaller).</summary>
    public Tensor[] Split(int splitSize, int dim = 0)
    {
        int d = Shapes.Axis("split", dim, Rank);
        if (splitSize <= 0) throw new ArgumentException($"split: split size must be positive, got {splitSize}.");
        var sizes = new List<int>();
        for (int at = 0; at < _shape[d]; at += splitSize) sizes.Add(Math.Min(splitSize, _shape[d] - at));
        return Split(sizes.ToArray(), d);
    }

    /// <summary>Joins tensors along an existing dimension. Backward: each input gets its slice of g.</summary>
    public static Tensor Concat(Tensor[] tensors, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Length == 0) throw new ArgumentException("concat: no tensors given.");
        var first = tensors[0];
        int d = Shapes.Axis("concat", dim, first.Rank);
        int total = 0;
        foreach (var t in tensors)
        {
            CheckSameDType("concat", first, t);
            bool ok = t.Rank == first.Rank;
            for (int i = 0; ok && i < first.Rank; i++) ok = i == d || t._shape[i] == first._shape[i];
            if (!ok)
                throw new ArgumentException($"concat: shape {Shapes.Format(t._shape)} does not match {Shapes.Format(first._shape)} outside dimension {dim}.");
            total += t._shape[d];
        }
        var shape = (int[])first._shape.Clone();
        shape[d] = total;
        var y = Uninitialized("concat", first, shape);
        var (outer, _, inner) = Split3(shape, d);
        int at = 0;
        foreach (var t in tensors)
        {
            int chunk = t._shape[d] * inner;
            for (int o = 0; o < outer; o++)
            {
                if (t.Storage is float[]) t.Span<float>().Slice(o * chunk, chunk).CopyTo(y.Span<float>().Slice(o * total * inner + at, chunk));
                else t.Span<double>().Slice(o * chunk, chunk).CopyTo(y.Span<double>().Slice(o * total * inner + at, chunk));
            }
            at += chunk;
        }
        if (!NeedsGrad(tensors)) return y;
        var inputs = (Tensor[])tensors.Clone();
        return y.Record("concat", inputs, g =>
        {
            var grads = new Tensor?[inputs.Length];
            int start = 0;
            for (int i = 0; i < inputs.Length; i++)
            {
                int len = inputs[i]._shape[d];
                if (inputs[i].RequiresGrad)
                    using (GradMode.NoGrad()) grads[i] = g.Slice(d, start, start + len);
                start += len;
            }
            return grads;
        });
    }

    /// <summary>Joins equally shaped tensors along a new dimension <paramref name="dim"/>.</summary>
    public static Tensor Stack(Tensor[] tensors, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Length == 0) throw new ArgumentException("stack: no tensors given.");
        foreach (var t in tensors)
            if (!Shapes.Equal(t._shape, tensors[0]._shape))
                throw new ArgumentException($"stack: shapes {Shapes.Format(tensors[0]._shape)} and {Shapes.Format(t._shape)} differ; stack needs equal shapes.");
        int d = Shapes.Axis("stack", dim, tensors[0].Rank + 1);
        return Concat(tensors.Select(t => t.Unsqueeze(d)).ToArray(), d);
    }

    /// <summary>
    /// Selects entries of dimension <paramref name="dim"/> by a 1-D index: <c>y[.., j, ..] = x[.., index[j], ..]</c>
    /// (embedding lookup). Backward: g rows added back at their indices (repeated indices accumulate).
    /// </summary>
    public Tensor IndexSelect(int dim, IndexTensor index)
    {
        var x = this;
        ArgumentNullException.ThrowIfNull(index);
        int d = Shapes.Axis("index_select", dim, Rank);
        if (index.Rank != 1) throw new ArgumentException($"index_select: index must be 1-D, got shape {Shapes.Format(index.Shape)}.");
        CheckIndices("index_select", index.Data, _shape[d], d);
        var (outer, n, inner) = Split3(_shape, d);
        int k = index.Count;
        var shape = (int[])_shape.Clone();
        shape[d] = k;
        var y = Uninitialized("index_select", x, shape);
        var idx = index.Data;
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < k; j++)
            {
                if (x.Storage is float[]) x.Span<float>().Slice((o * n + idx[j]) * inner, inner).CopyTo(y.Span<float>().Slice((o * k + j) * inner, inner));
                else x.Span<double>().Slice((o * n + idx[j]) * inner, inner).CopyTo(y.Span<double>().Slice((o * k + j) * inner, inner));
            }
        if (!NeedsGrad(x)) return y;
        return y.Record("index_select", [x], g =>
        {
            var dx = ZerosOf(x, x._shape);
            for (int o = 0; o < outer; o++)
                for (int j = 0; j < k; j++)
                {
                    if (dx.Storage is float[])
                    {
                        var dst = dx.Span<float>().Slice((o * n + idx[j]) * inner, inner);
                        TensorPrimitives.Add(dst, g.Span<float>().Slice((o * k + j) * inner, inner), dst);
                    }
                    else
                    {
                        var dst = dx.Span<double>().Slice((o * n + idx[j]) * inner, inner);
                        TensorPrimitives.Add(dst, g.Span<double>().Slice((o * k + j) * inner, inner), dst);
                    }
                }
            return [dx];
        });
    }

    /// <summary>
    /// <c>y[i0..i_dim..] = x[i0..index[i0..i_dim..]..]</c>: along <paramref name="dim"/> take the
    /// position named by <paramref name="index"/> (same rank as x; other dimensions no larger than x's).
    /// The output has the index's shape. Backward: scatter-add of g into zeros.
    /// </summary>
    public Tensor Gather(int dim, IndexTensor index)
    {
        var x = this;
        ArgumentNullException.ThrowIfNull(index);
        int d = Shapes.Axis("gather", dim, Rank);
        CheckIndexShape("gather", index, _shape, d);
        CheckIndices("gather", index.Data, _shape[d], d);
        var y = Uninitialized("gather", x, (int[])index.ShapeArray.Clone());
        var map = GatherOffsets(index, _shape, d);
        for (int i = 0; i < map.Length; i++) y.SetFlatRaw(i, x.GetFlat(map[i]));
        if (!NeedsGrad(x)) return y;
        return y.Record("gather", [x], g =>
        {
            var dx = ZerosOf(x, x._shape);
            for (int i = 0; i < map.Length; i++) dx.SetFlatRaw(map[i], dx.GetFlat(map[i]) + g.GetFlat(i));
            return [dx];
        });
    }

    /// <summary>
    /// A copy of x with <paramref name="source"/> added at the positions <paramref name="index"/> names
    /// along <paramref name="dim"/> (index and source have the same shape; repeated positions
    /// accumulate). Backward: dx = g; dsource = g gathered at the index.
    /// </summary>
    public Tensor ScatterAdd(int dim, IndexTensor index, Tensor source)
    {
        var x = this;
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(source);
        CheckSameDType("scatter_add", x, source);
        int d = Shapes.Axis("scatter_add", dim, Rank);
        if (!Shapes.Equal(index.Shape, source._shape))
            throw new ArgumentException($"scatter_add: index shape {Shapes.Format(index.Shape)} differs from source shape {Shapes.Format(source._shape)}.");
        CheckIndexShape("scatter_add", index, _shape, d);
        CheckIndices("scatter_add", index.Data, _shape[d], d);
        var map = GatherOffsets(index, _shape, d);
        var y = x.CloneRaw();
        for (int i = 0; i < map.Length; i++) y.SetFlatRaw(map[i], y.GetFlat(map[i]) + source.GetFlat(i));
        if (!NeedsGrad(x, source)) return y;
        return y.Record("scatter_add", [x, source], g =>
        {
            Tensor? ds = null;
            if (source.RequiresGrad)
            {
                ds = Uninitialized("scatter_add", source, source._shape);
                for (int i = 0; i < map.Length; i++) ds.SetFlatRaw(i, g.GetFlat(map[i]));
            }
            return [g, ds];
        });
    }

    /// <summary>Broadcasts to <paramref name="shape"/> (materialised). Backward: g summed back to the input shape.</summary>
    public Tensor Expand(params int[] shape)
    {
        var x = this;
        var target = Shapes.Broadcast("expand", _shape, shape);
        if (!Shapes.Equal(target, shape))
            throw new ArgumentException($"expand: shape {Shapes.Format(_shape)} cannot be expanded to {Shapes.Format(shape)}.");
        var y = ExpandRaw(x, target);
        if (y == x) y = x.CloneRaw();
        return NeedsGrad(x) ? y.Record("expand", [x], g => [SumTo(g, x._shape)]) : y;
    }

    /// <summary>A copy that stays in the graph. Backward: g.</summary>
    public Tensor Clone()
    {
        var x = this;
        var y = x.CloneRaw();
        return NeedsGrad(x) ? y.Record("clone", [x], g => [g]) : y;
    }

    /// <summary>Converts to another element type (a copy). Backward: g converted back.</summary>
    public Tensor To(DType dtype)
    {
        var x = this;
        if (dtype == DType) return Clone();
        var y = Uninitialized("to", dtype, _shape);
        if (dtype == DType.Float64)
        {
            var src = x.Span<float>();
            var dst = y.Span<double>();
            for (int i = 0; i < src.Length; i++) dst[i] = src[i];
        }
        else TensorPrimitives.ConvertTruncating<double, float>(x.Span<double>(), y.Span<float>());
        var from = DType;
        return NeedsGrad(x) ? y.Record("to", [x], g => [g.To(from)]) : y;
    }

    internal Tensor CloneRaw()
    {
        var copy = Uninitialized("clone", this, _shape);
        Array.Copy(Storage, copy.Storage, Count);
        return copy;
    }

    private static void CheckIndices(string op, int[] idx, int size, int dim)
    {
        for (int i = 0; i < idx.Length; i++)
            if ((uint)idx[i] >= (uint)size)
                throw new ArgumentException($"{op}: index {idx[i]} (at position {i}) is out of range for dimension {dim} of size {size}.");
    }

    private static void CheckIndexShape(string op, IndexTensor index, int[] shape, int d)
    {
        bool ok = index.Rank == shape.Length;
        for (int i = 0; ok && i < shape.Length; i++) ok = i == d || index.ShapeArray[i] <= shape[i];
        if (!ok)
            throw new ArgumentException($"{op}: index shape {Shapes.Format(index.Shape)} must have rank {shape.Length} and no dimension larger than {Shapes.Format(shape)} outside dimension {d}.");
    }

    /// <summary>Flat offsets into a tensor of <paramref name="shape"/> named by each element of <paramref name="index"/> along <paramref name="d"/>.</summary>
    private static int[] GatherOffsets(IndexTensor index, int[] shape, int d)
    {
        var strides = Shapes.Strides(shape);
        var ishape = index.ShapeArray;
        var map = new int[index.Count];
        var pos = new int[ishape.Length];
        for (int i = 0; i < map.Length; i++)
        {
            int off = 0;
            for (int k = 0; k < ishape.Length; k++) off += (k == d ? index.Data[i] : pos[k]) * strides[k];
            map[i] = off;
            for (int k = ishape.Length - 1; k >= 0; k--)
            {
                if (++pos[k] < ishape[k]) break;
                pos[k] = 0;
            }
        }
        return map;
    }
}

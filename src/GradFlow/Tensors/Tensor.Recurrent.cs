using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

/// <summary>The nonlinearity of a vanilla (Elman) recurrent layer.</summary>
public enum RnnNonlinearity
{
    /// <summary><c>h′ = tanh(·)</c> (PyTorch's default).</summary>
    Tanh,

    /// <summary><c>h′ = max(0, ·)</c> (the IRNN of Le et al. 2015 uses it with identity recurrent weights).</summary>
    Relu,
}

// Recurrent layers as fused ops: one node per layer for the whole sequence, with backpropagation
// through time written by hand. Forward: the input projection of every time step in one GEMM
// (x·W_ihᵀ + biases over T·B rows), then per step one GEMM h·W_hhᵀ for all gates and one fused gate
// kernel (RecurrentKernels; ActivationKernels for the vanilla RNN). Backward walks the steps in
// reverse with one GEMM per step for dh_prev = dA·W_hh; the weight, bias and input gradients are then
// one GEMM (or column sum) each over all T·B rows.
public sealed partial class Tensor
{
    /// <summary>
    /// One vanilla (Elman) recurrent layer over a time-major sequence, as one layer of <c>torch.nn.RNN</c>:
    /// <c>h_t = φ(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)</c>, φ = tanh or ReLU.
    /// Backward (through time): <c>da_t = φ′·(g_t + dh_t)</c> with φ′ from the saved output (1 − h² for
    /// tanh; 1 where h &gt; 0 for ReLU, subgradient 0 at 0), <c>dh_{t−1} = da_t·W_hh</c>,
    /// <c>dW_ih = Σ_t da_tᵀ·x_t</c>, <c>dW_hh = Σ_t da_tᵀ·h_{t−1}</c>, <c>db_ih = db_hh = Σ da</c>,
    /// <c>dx_t = da_t·W_ih</c>.
    /// </summary>
    /// <param name="input">x, [T, B, I] (T, B ≥ 1).</param>
    /// <param name="h0">Initial state h_0, [B, H].</param>
    /// <param name="weightIh">W_ih, [H, I].</param>
    /// <param name="weightHh">W_hh, [H, H].</param>
    /// <param name="biasIh">b_ih, [H], or null.</param>
    /// <param name="biasHh">b_hh, [H], or null.</param>
    /// <param name="nonlinearity">φ.</param>
    /// <param name="probe">When given, receives Σ(dL/dh_t)² and the non-finite count of every step during backward (<see cref="RecurrentGradientProbe"/>); null (the default) costs nothing.</param>
    /// <returns>Output, every h_t, [T, B, H]; and HN = h_T, [B, H].</returns>
    /// <exception cref="ArgumentException">naming the op (<c>rnn_tanh</c> or <c>rnn_relu</c>) and the shapes when they do not fit.</exception>
    public static (Tensor Output, Tensor HN) Rnn(Tensor input, Tensor h0, Tensor weightIh, Tensor weightHh,
        Tensor? biasIh = null, Tensor? biasHh = null, RnnNonlinearity nonlinearity = RnnNonlinearity.Tanh, RecurrentGradientProbe? probe = null)
    {
        string op = nonlinearity switch
        {
            RnnNonlinearity.Tanh => "rnn_tanh",
            RnnNonlinearity.Relu => "rnn_relu",
            _ => throw new ArgumentOutOfRangeException(nameof(nonlinearity), $"rnn: unknown nonlinearity {nonlinearity}."),
        };
        var a = RecurrentArgs.Check(op, 1, input, h0, null, weightIh, weightHh, biasIh, biasHh);
        bool relu = nonlinearity == RnnNonlinearity.Relu;
        var output = input.Storage is float[] ? RnnOp<float>(op, a, relu, probe) : RnnOp<double>(op, a, relu, probe);
        return (output, a.Step(output, a.Steps - 1));
    }

    /// <summary>
    /// One LSTM layer over a time-major sequence, as one layer of <c>torch.nn.LSTM</c> (Hochreiter and
    /// Schmidhuber 1997; forget gate of Gers et al. 2000): with <c>a = x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh</c>
    /// split into <c>[a_i, a_f, a_g, a_o]</c> (PyTorch's gate order): <c>i = σ(a_i)</c>, <c>f = σ(a_f)</c>,
    /// <c>g = tanh(a_g)</c>, <c>o = σ(a_o)</c>, <c>c_t = f·c_{t−1} + i·g</c>, <c>h_t = o·tanh(c_t)</c>.
    /// Backward: per step the fused gate backward (<see cref="RecurrentKernels.LstmBackward{T}(int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, Span{T})"/>)
    /// then <c>dh_{t−1} = da_t·W_hh</c>, <c>dc_{t−1} = dc_t·f</c>; parameter and input gradients as
    /// <see cref="Rnn"/>.
    /// </summary>
    /// <param name="input">x, [T, B, I] (T, B ≥ 1).</param>
    /// <param name="h0">h_0, [B, H].</param>
    /// <param name="c0">c_0, [B, H].</param>
    /// <param name="weightIh">W_ih, [4H, I].</param>
    /// <param name="weightHh">W_hh, [4H, H].</param>
    /// <param name="biasIh">b_ih, [4H], or null.</param>
    /// <param name="biasHh">b_hh, [4H], or null.</param>
    /// <param name="probe">When given, receives Σ(dL/dh_t)² and the non-finite count of every step during backward (<see cref="RecurrentGradientProbe"/>); null (the default) costs nothing.</param>
    /// <returns>Output, every h_t, [T, B, H]; HN = h_T and CN = c_T, [B, H].</returns>
    /// <exception cref="ArgumentException">naming <c>lstm</c> and the shapes when they do not fit.</exception>
    public static (Tensor Output, Tensor HN, Tensor CN) Lstm(Tensor input, Tensor h0, Tensor c0, Tensor weightIh, Tensor weightHh,
        Tensor? biasIh = null, Tensor? biasHh = null, RecurrentGradientProbe? probe = null)
    {
        ArgumentNullException.ThrowIfNull(c0);
        var a = RecurrentArgs.Check("lstm", 4, input, h0, c0, weightIh, weightHh, biasIh, biasHh);
        // One node for the sequence: its tensor is [T + 1, B, H], rows 0..T−1 the outputs h_t, row T
        // the final cell state; the three results are slices of it, so gradients from any of them
        // meet in one backward pass.
        var packed = input.Storage is float[] ? LstmOp<float>(a, probe) : LstmOp<double>(a, probe);
        return (packed.Narrow(0, 0, a.Steps), a.Step(packed, a.Steps - 1), a.Step(packed, a.Steps));
    }

    /// <summary>
    /// One GRU layer over a time-major sequence, as one layer of <c>torch.nn.GRU</c> (Cho et al. 2014,
    /// PyTorch's form): with <c>x_t·W_ihᵀ + b_ih = [x_r, x_z, x_n]</c> and <c>h_{t−1}·W_hhᵀ + b_hh = [h_r, h_z, h_n]</c>:
    /// <c>r = σ(x_r + h_r)</c>, <c>z = σ(x_z + h_z)</c>, <c>n = tanh(x_n + r·h_n)</c>,
    /// <c>h_t = (1 − z)·n + z·h_{t−1}</c>. Backward: per step the fused gate backward
    /// (<see cref="RecurrentKernels.GruBackward{T}(int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, Span{T}, Span{T})"/>)
    /// gives the input-side and hidden-side pre-activation gradients dA_x, dA_h; <c>dh_{t−1} = dh·z + dA_h·W_hh</c>;
    /// <c>dW_ih = Σ dA_xᵀ·x_t</c>, <c>dW_hh = Σ dA_hᵀ·h_{t−1}</c>, <c>db_ih = Σ dA_x</c>, <c>db_hh = Σ dA_h</c>.
    /// </summary>
    /// <param name="input">x, [T, B, I] (T, B ≥ 1).</param>
    /// <param name="h0">h_0, [B, H].</param>
    /// <param name="weightIh">W_ih, [3H, I].</param>
    /// <param name="weightHh">W_hh, [3H, H].</param>
    /// <param name="biasIh">b_ih, [3H], or null.</param>
    /// <param name="biasHh">b_hh, [3H], or null.</param>
    /// <param name="probe">When given, receives Σ(dL/dh_t)² and the non-finite count of every step during backward (<see cref="RecurrentGradientProbe"/>); null (the default) costs nothing.</param>
    /// <returns>Output, every h_t, [T, B, H]; and HN = h_T, [B, H].</returns>
    /// <exception cref="ArgumentException">naming <c>gru</c> and the shapes when they do not fit.</exception>
    public static (Tensor Output, Tensor HN) Gru(Tensor input, Tensor h0, Tensor weightIh, Tensor weightHh,
        Tensor? biasIh = null, Tensor? biasHh = null, RecurrentGradientProbe? probe = null)
    {
        var a = RecurrentArgs.Check("gru", 3, input, h0, null, weightIh, weightHh, biasIh, biasHh);
        var output = input.Storage is float[] ? GruOp<float>(a, probe) : GruOp<double>(a, probe);
        return (output, a.Step(output, a.Steps - 1));
    }

    // ---------------------------------------------------------------- vanilla RNN

    private static Tensor RnnOp<T>(string op, RecurrentArgs a, bool relu, RecurrentGradientProbe? probe) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int steps = a.Steps, batch = a.Batch, hidden = a.Hidden, bh = batch * hidden;
        var output = Uninitialized(op, a.Input, [steps, batch, hidden]);
        var pre = TensorPool.Rent<T>(steps * bh);
        a.InputProjection<T>(pre, withHiddenBias: true);
        var hs = output.Span<T>();
        var wHhT = a.TransposedWeightHh<T>();
        for (int t = 0; t < steps; t++)
        {
            var preT = pre.AsSpan(t * bh, bh);
            GemmT(false, false, batch, hidden, hidden, a.HiddenBefore<T>(hs, t), hidden, wHhT, hidden, true, preT, hidden);
            if (relu) ActivationKernels.Relu<T>(preT, hs.Slice(t * bh, bh));
            else ActivationKernels.Tanh<T>(preT, hs.Slice(t * bh, bh));
        }
        TensorPool.Return(pre); // the backward rule reads the outputs, not the pre-activations
        TensorPool.Return(wHhT);
        if (!NeedsGrad(a.Inputs)) return output;
        return output.Record(op, a.Inputs, g =>
        {
            var gs = g.Span<T>();
            var hsv = output.Span<T>();
            var w = a.WeightHh.Span<T>();
            var dPre = TensorPool.Rent<T>(steps * bh);
            var dh = new T[bh];
            probe?.Begin(steps, bh);
            for (int t = steps - 1; t >= 0; t--)
            {
                TensorPrimitives.Add<T>(dh, gs.Slice(t * bh, bh), dh);
                probe?.Record<T>(t, dh); // dh is now dL/dh_t
                var dPreT = dPre.AsSpan(t * bh, bh);
                // φ′ from the output: ReLU's y > 0 exactly where its input is > 0.
                if (relu) ActivationKernels.ReluBackward<T>(hsv.Slice(t * bh, bh), dh, dPreT);
                else ActivationKernels.TanhBackward<T>(hsv.Slice(t * bh, bh), dh, dPreT);
                if (t > 0 || a.H0.RequiresGrad) GemmT(false, false, batch, hidden, hidden, dPreT, hidden, w, hidden, false, dh, hidden);
            }
            var grads = a.Gradients<T>(dPre, dPre, hsv, dh, null);
            TensorPool.Return(dPre);
            return grads;
        });
    }

    // ---------------------------------------------------------------- LSTM

    private static Tensor LstmOp<T>(RecurrentArgs a, RecurrentGradientProbe? probe) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int steps = a.Steps, batch = a.Batch, hidden = a.Hidden, bh = batch * hidden, bg = 4 * bh;
        var packed = Uninitialized("lstm", a.Input, [steps + 1, batch, hidden]);
        // saved for backward: rented from the tensor pool, returned when the node is released
        var gates = TensorPool.Rent<T>(steps * bg);
        var cs = TensorPool.Rent<T>((steps + 1) * bh);
        var tanhCs = TensorPool.Rent<T>(steps * bh);
        a.C0!.Span<T>().CopyTo(cs);
        a.InputProjection<T>(gates, withHiddenBias: true);
        var hs = packed.Span<T>();
        var wHhT = a.TransposedWeightHh<T>();
        for (int t = 0; t < steps; t++)
        {
            var pre = gates.AsSpan(t * bg, bg);
            GemmT(false, false, batch, 4 * hidden, hidden, a.HiddenBefore<T>(hs, t), hidden, wHhT, 4 * hidden, true, pre, 4 * hidden);
            RecurrentKernels.LstmForward<T>(batch, hidden, pre, cs.AsSpan(t * bh, bh), pre, cs.AsSpan((t + 1) * bh, bh),
                tanhCs.AsSpan(t * bh, bh), hs.Slice(t * bh, bh));
        }
        TensorPool.Return(wHhT);
        cs.AsSpan(steps * bh, bh).CopyTo(hs.Slice(steps * bh));
        void ReturnSaved()
        {
            TensorPool.Return(gates);
            TensorPool.Return(cs);
            TensorPool.Return(tanhCs);
        }
        if (!NeedsGrad(a.Inputs))
        {
            ReturnSaved();
            return packed;
        }
        return packed.Record("lstm", a.Inputs, g =>
        {
            var gs = g.Span<T>();
            var hsv = packed.Span<T>();
            var w = a.WeightHh.Span<T>();
            var dPre = TensorPool.Rent<T>(steps * bg);
            var dh = new T[bh];
            var dc = gs.Slice(steps * bh, bh).ToArray();
            probe?.Begin(steps, bh);
            for (int t = steps - 1; t >= 0; t--)
            {
                TensorPrimitives.Add<T>(dh, gs.Slice(t * bh, bh), dh);
                probe?.Record<T>(t, dh); // dh is now dL/dh_t
                var dPreT = dPre.AsSpan(t * bg, bg);
                RecurrentKernels.LstmBackward<T>(batch, hidden, gates.AsSpan(t * bg, bg), cs.AsSpan(t * bh, bh), tanhCs.AsSpan(t * bh, bh),
                    dh, dc, dPreT, dc);
                if (t > 0 || a.H0.RequiresGrad) GemmT(false, false, batch, hidden, 4 * hidden, dPreT, 4 * hidden, w, hidden, false, dh, hidden);
            }
            var grads = a.Gradients<T>(dPre, dPre, hsv[..(steps * bh)], dh, dc);
            TensorPool.Return(dPre);
            return grads;
        }, ReturnSaved);
    }

    // ---------------------------------------------------------------- GRU

    private static Tensor GruOp<T>(RecurrentArgs a, RecurrentGradientProbe? probe) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int steps = a.Steps, batch = a.Batch, hidden = a.Hidden, bh = batch * hidden, bg = 3 * bh, g3 = 3 * hidden;
        var output = Uninitialized("gru", a.Input, [steps, batch, hidden]);
        // saved for backward (gates, hns): rented from the tensor pool, returned when the node is released
        var xGates = TensorPool.Rent<T>(steps * bg);
        var gates = TensorPool.Rent<T>(steps * bg);
        var hns = TensorPool.Rent<T>(steps * bh);
        var hGates = TensorPool.Rent<T>(bg);
        a.InputProjection<T>(xGates, withHiddenBias: false);
        var hs = output.Span<T>();
        var wHhT = a.TransposedWeightHh<T>();
        for (int t = 0; t < steps; t++)
        {
            var hPrev = a.HiddenBefore<T>(hs, t);
            bool biased = FillBias<T>(hGates, batch, g3, a.BiasHh, null);
            GemmT(false, false, batch, g3, hidden, hPrev, hidden, wHhT, g3, biased, hGates, g3);
            RecurrentKernels.GruForward<T>(batch, hidden, xGates.AsSpan(t * bg, bg), hGates, hPrev,
                gates.AsSpan(t * bg, bg), hns.AsSpan(t * bh, bh), hs.Slice(t * bh, bh));
        }
        TensorPool.Return(xGates);
        TensorPool.Return(hGates);
        TensorPool.Return(wHhT);
        void ReturnSaved()
        {
            TensorPool.Return(gates);
            TensorPool.Return(hns);
        }
        if (!NeedsGrad(a.Inputs))
        {
            ReturnSaved();
            return output;
        }
        return output.Record("gru", a.Inputs, g =>
        {
            var gs = g.Span<T>();
            var hsv = output.Span<T>();
            var w = a.WeightHh.Span<T>();
            var dX = TensorPool.Rent<T>(steps * bg);
            var dH = TensorPool.Rent<T>(steps * bg);
            var dh = new T[bh];
            probe?.Begin(steps, bh);
            for (int t = steps - 1; t >= 0; t--)
            {
                TensorPrimitives.Add<T>(dh, gs.Slice(t * bh, bh), dh);
                probe?.Record<T>(t, dh); // dh is now dL/dh_t
                var dHt = dH.AsSpan(t * bg, bg);
                RecurrentKernels.GruBackward<T>(batch, hidden, gates.AsSpan(t * bg, bg), hns.AsSpan(t * bh, bh), a.HiddenBefore<T>(hsv, t),
                    dh, dX.AsSpan(t * bg, bg), dHt, dh);
                if (t > 0 || a.H0.RequiresGrad) GemmT(false, false, batch, hidden, g3, dHt, g3, w, hidden, true, dh, hidden);
            }
            var grads = a.Gradients<T>(dX, dH, hsv, dh, null);
            TensorPool.Return(dX);
            TensorPool.Return(dH);
            return grads;
        }, ReturnSaved);
    }

    // ---------------------------------------------------------------- shared

    /// <summary>Writes <c>b1 + b2</c> (either may be null) into every row of <paramref name="dst"/>; false (nothing written) when both are null.</summary>
    private static bool FillBias<T>(Span<T> dst, int rows, int width, Tensor? b1, Tensor? b2) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (b1 is null && b2 is null) return false;
        var row = dst[..width];
        if (b1 is not null && b2 is not null) TensorPrimitives.Add<T>(b1.Span<T>(), b2.Span<T>(), row);
        else (b1 ?? b2)!.Span<T>().CopyTo(row);
        for (int r = 1; r < rows; r++) row.CopyTo(dst.Slice(r * width, width));
        return true;
    }

    /// <summary><c>C = op(A)·op(B)</c>, or <c>C += op(A)·op(B)</c> with <paramref name="accumulate"/>, in T (float or double).</summary>
    private static void GemmT<T>(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb,
        bool accumulate, Span<T> c, int ldc) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            Gemm.Multiply(transA, transB, m, n, k, 1f, MemoryMarshal.Cast<T, float>(a), lda, MemoryMarshal.Cast<T, float>(b), ldb,
                accumulate ? 1f : 0f, MemoryMarshal.Cast<T, float>(c), ldc);
        else
            Gemm.Multiply(transA, transB, m, n, k, 1.0, MemoryMarshal.Cast<T, double>(a), lda, MemoryMarshal.Cast<T, double>(b), ldb,
                accumulate ? 1.0 : 0.0, MemoryMarshal.Cast<T, double>(c), ldc);
    }

    /// <summary>The validated arguments of one recurrent layer op, and the steps every family shares.</summary>
    private sealed class RecurrentArgs
    {
        private RecurrentArgs(string op, int gates, Tensor input, Tensor h0, Tensor? c0, Tensor weightIh, Tensor weightHh, Tensor? biasIh, Tensor? biasHh)
        {
            (Op, Gates, Input, H0, C0, WeightIh, WeightHh, BiasIh, BiasHh) = (op, gates, input, h0, c0, weightIh, weightHh, biasIh, biasHh);
            Steps = input._shape[0];
            Batch = input._shape[1];
            InputSize = input._shape[2];
            Hidden = weightHh._shape[1];
            var inputs = new List<Tensor> { input, h0 };
            if (c0 is not null) inputs.Add(c0);
            inputs.Add(weightIh);
            inputs.Add(weightHh);
            if (biasIh is not null) inputs.Add(biasIh);
            if (biasHh is not null) inputs.Add(biasHh);
            Inputs = inputs.ToArray();
        }

        public string Op { get; }
        public int Gates { get; }
        public Tensor Input { get; }
        public Tensor H0 { get; }
        public Tensor? C0 { get; }
        public Tensor WeightIh { get; }
        public Tensor WeightHh { get; }
        public Tensor? BiasIh { get; }
        public Tensor? BiasHh { get; }
        public int Steps { get; }
        public int Batch { get; }
        public int InputSize { get; }
        public int Hidden { get; }

        /// <summary>The op's graph inputs: input, h0, (c0), weight_ih, weight_hh, (bias_ih), (bias_hh).</summary>
        public Tensor[] Inputs { get; }

        public static RecurrentArgs Check(string op, int gates, Tensor input, Tensor h0, Tensor? c0, Tensor weightIh, Tensor weightHh,
            Tensor? biasIh, Tensor? biasHh)
        {
            ArgumentNullException.ThrowIfNull(input);
            ArgumentNullException.ThrowIfNull(h0);
            ArgumentNullException.ThrowIfNull(weightIh);
            ArgumentNullException.ThrowIfNull(weightHh);
            foreach (var t in new[] { h0, c0, weightIh, weightHh, biasIh, biasHh })
                if (t is not null) CheckSameDType(op, input, t);
            string gateNames = gates switch { 4 => " (gates i, f, g, o)", 3 => " (gates r, z, n)", _ => "" };
            string rows = gates == 1 ? "H" : $"{gates}·H";
            if (weightHh.Rank != 2 || weightHh._shape[1] < 1 || weightHh._shape[0] != gates * weightHh._shape[1])
                throw new ArgumentException($"{op}: weight_hh must be [{rows}, H]{gateNames} with H ≥ 1, got {Shapes.Format(weightHh._shape)}.");
            int hidden = weightHh._shape[1], g = gates * hidden;
            if (weightIh.Rank != 2 || weightIh._shape[0] != g || weightIh._shape[1] < 1)
                throw new ArgumentException($"{op}: weight_ih must be [{g}, input_size] to match weight_hh {Shapes.Format(weightHh._shape)}, got {Shapes.Format(weightIh._shape)}.");
            int inputSize = weightIh._shape[1];
            if (input.Rank != 3 || input._shape[2] != inputSize || input._shape[0] < 1 || input._shape[1] < 1)
                throw new ArgumentException(
                    $"{op}: input must be [T, B, {inputSize}] (time-major, T and B at least 1; input_size from weight_ih {Shapes.Format(weightIh._shape)}), got {Shapes.Format(input._shape)}.");
            int batch = input._shape[1];
            CheckState(op, "h0", h0, batch, hidden, input);
            if (c0 is not null) CheckState(op, "c0", c0, batch, hidden, input);
            CheckBias(op, "bias_ih", biasIh, g);
            CheckBias(op, "bias_hh", biasHh, g);
            return new RecurrentArgs(op, gates, input, h0, c0, weightIh, weightHh, biasIh, biasHh);
        }

        private static void CheckState(string op, string name, Tensor state, int batch, int hidden, Tensor input)
        {
            if (state.Rank != 2 || state._shape[0] != batch || state._shape[1] != hidden)
                throw new ArgumentException(
                    $"{op}: {name} must be [B, H] = [{batch}, {hidden}] for input {Shapes.Format(input._shape)}, got {Shapes.Format(state._shape)}.");
        }

        private static void CheckBias(string op, string name, Tensor? bias, int g)
        {
            if (bias is not null && (bias.Rank != 1 || bias._shape[0] != g))
                throw new ArgumentException($"{op}: {name} must be [{g}], got {Shapes.Format(bias._shape)}.");
        }

        /// <summary>
        /// W_hhᵀ, [H, G·H], in an array rented from the tensor pool (the caller returns it): the
        /// per-step products h·W_hhᵀ then read their B operand in place instead of transposing
        /// W_hh in the packing at every step. Same values, same tiles: the same bits.
        /// </summary>
        public T[] TransposedWeightHh<T>() where T : unmanaged => (T[])PermuteRaw(WeightHh, [1, 0]).Storage;

        /// <summary>Step <paramref name="index"/> of a [steps, B, H] tensor as [B, H] (in the graph).</summary>
        public Tensor Step(Tensor sequence, int index) => sequence.Narrow(0, index, 1).Reshape(Batch, Hidden);

        /// <summary>h_{t−1}: h_0 for t = 0, else row block t − 1 of the outputs.</summary>
        public ReadOnlySpan<T> HiddenBefore<T>(ReadOnlySpan<T> outputs, int t) where T : unmanaged =>
            t == 0 ? H0.Span<T>() : outputs.Slice((t - 1) * Batch * Hidden, Batch * Hidden);

        /// <summary>
        /// <c>dst = x·W_ihᵀ + b_ih (+ b_hh)</c> over all T·B rows: one GEMM, the bias rows written first
        /// and accumulated into.
        /// </summary>
        public void InputProjection<T>(Span<T> dst, bool withHiddenBias) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int rows = Steps * Batch, g = Gates * Hidden;
            bool biased = FillBias<T>(dst, rows, g, BiasIh, withHiddenBias ? BiasHh : null);
            GemmT(false, true, rows, g, InputSize, Input.Span<T>(), InputSize, WeightIh.Span<T>(), InputSize, biased, dst, g);
        }

        /// <summary>
        /// The gradients of <see cref="Inputs"/>, in order, from the pre-activation gradients of every step
        /// (<paramref name="dX"/> on the input side, <paramref name="dH"/> on the hidden side; the same
        /// array except for the GRU), the outputs h_1..h_T, and dL/dh_0 (and dL/dc_0).
        /// </summary>
        public Tensor?[] Gradients<T>(T[] dX, T[] dH, ReadOnlySpan<T> outputs, T[] dh0, T[]? dc0) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int rows = Steps * Batch, g = Gates * Hidden, h = Hidden;
            var grads = new List<Tensor?> { null, H0.RequiresGrad ? new Tensor(dh0, [Batch, h]) : null };
            if (C0 is not null) grads.Add(C0.RequiresGrad ? new Tensor(dc0!, [Batch, h]) : null);
            if (Input.RequiresGrad)
            {
                var dx = Uninitialized(Op, Input, Input._shape);
                GemmT(false, false, rows, InputSize, g, dX, g, WeightIh.Span<T>(), InputSize, false, dx.Span<T>(), InputSize);
                grads[0] = dx;
            }
            Tensor? dWih = null, dWhh = null;
            if (WeightIh.RequiresGrad)
            {
                dWih = Uninitialized(Op, WeightIh, WeightIh._shape);
                GemmT(true, false, g, InputSize, rows, dX, g, Input.Span<T>(), InputSize, false, dWih.Span<T>(), InputSize);
            }
            if (WeightHh.RequiresGrad)
            {
                // Σ_t dA_tᵀ·h_{t−1}: step 0 against h_0, steps 1.. against the outputs 0..T−2 (contiguous).
                dWhh = Uninitialized(Op, WeightHh, WeightHh._shape);
                var dw = dWhh.Span<T>();
                GemmT(true, false, g, h, Batch, dH.AsSpan(0, Batch * g), g, H0.Span<T>(), h, false, dw, h);
                if (Steps > 1)
                    GemmT(true, false, g, h, rows - Batch, dH.AsSpan(Batch * g), g, outputs[..((rows - Batch) * h)], h, true, dw, h);
            }
            grads.Add(dWih);
            grads.Add(dWhh);
            if (BiasIh is not null) grads.Add(BiasIh.RequiresGrad ? ColumnSums(dX, rows, g, BiasIh) : null);
            if (BiasHh is not null) grads.Add(BiasHh.RequiresGrad ? ColumnSums(dH, rows, g, BiasHh) : null);
            return grads.ToArray();
        }

        private Tensor ColumnSums<T>(T[] d, int rows, int g, Tensor like) where T : unmanaged, IFloatingPointIeee754<T>
        {
            var db = Uninitialized(Op, like, like._shape);
            ReduceKernels.Sum<T>(d, 1, rows, g, db.Span<T>());
            return db;
        }
    }
}

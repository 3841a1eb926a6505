using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace GradFlow.Kernels;

/// <summary>
/// The blocked GEMM loops around micro-kernel <typeparamref name="TKernel"/> (BLIS order):
/// <c>for jc (NC cols) · for pc (KC deep) · [pack B block] · for task (row panels × col chunks) ·
/// [pack A block] · for jr (NR cols) · for ir (MR rows) · micro-kernel</c>.
/// </summary>
/// <remarks>
/// Task partition (shape only): the ⌈m/MR⌉ row panels are split evenly into ⌈panels/(MC/MR)⌉ tasks,
/// rounded up to an even count (so two threads get equal shares); when that gives fewer than 4
/// tasks, the NR column panels are also split into chunks of at least 4 panels, which then share one
/// packed A (packed with B by the block's packing job). Each task owns its C tile for the current k
/// block, and k blocks are applied in order (beta on the first, 1 after), so every C element sees the
/// same operations whichever thread runs it. A deep product with a small output is first cut along k
/// into parts (<see cref="DepthParts"/>), each computed that way on one thread and summed in part order; a large
/// product is cut into one slab of whole row or column panels per thread (<see cref="Slabs"/>), each slab the serial
/// loops on its own thread.
/// </remarks>
internal static unsafe class GemmDriver<T, TKernel>
    where T : unmanaged, INumber<T>
    where TKernel : struct, IMicroKernel<T>
{
    /// <summary>Packed A block of the thread running a task (MC×KC).</summary>
    [ThreadStatic] private static T[]? _packA;

    /// <summary>The loop state of the calling thread's current matrix.</summary>
    [ThreadStatic] private static Job? _job;

    /// <summary>Packed B block of the calling thread (KC×NC), shared by that call's tasks.</summary>
    [ThreadStatic] private static T[]? _packB;

    /// <summary>Packed A block of the calling thread (all row panels × KC) when its column chunks share it.</summary>
    [ThreadStatic] private static T[]? _sharedA;

    /// <summary>Multiply-adds per batch item below which a batch is split by items instead of tiles.</summary>
    private const long SmallItem = 1L << 21;

    /// <summary>Packed B elements from which the packing itself is spread over the threads.</summary>
    private const long PackInParallel = 1L << 16;

    /// <summary>
    /// B micro-panels per sub-block of a task's loops (<c>for jb · for ir · for jr</c>: the row panels inside each sub-block of B
    /// panels), for an m×n block of C. Sub-blocks of a quarter of the L2 (<see cref="CacheSizes"/>; 4 panels of 32×512 floats for
    /// the AVX-512 tile and a 1 MiB L2) where the tiles read a C larger than the L2, which then comes from L3: C is visited
    /// along its rows, where the hardware prefetcher follows it, the sub-block stays in L2 across the row panels and one A
    /// micro-panel in L1 across the sub-block. With the column panels outermost (1 panel, the order before 2026-12-06) each tile
    /// starts on MR new rows of C: gemm-2048 1-4 % slower (<c>--profile subblock</c>). A k block that only writes C (the first,
    /// with beta 0 or a bias) waits for no load of C, and a C that stays in L2 between k blocks (mlp-wide's 128×1024) has no
    /// misses to avoid: both keep the column panels outermost, which keeps the B micro-panel hot across the row panels (sub-blocks
    /// measured 1-2 % slower there). Every element sees the same operations in any order. <see cref="Gemm.SubBlockPanels"/> forces a size.
    /// </summary>
    internal static int SubBlocksFor(int m, int n, bool readsC) =>
        Gemm.SubBlockPanels > 0 ? Gemm.SubBlockPanels
        : readsC && (long)m * n * sizeof(T) > CacheSizes.L2Bytes ? SubBlockPanels : 1;

    /// <summary>The sub-block size where one is taken: a quarter of the L2 in B micro-panels.</summary>
    internal static readonly int SubBlockPanels = Math.Max(1, (int)(CacheSizes.L2Bytes / 4 / ((long)TKernel.KC * TKernel.NR * sizeof(T))));

    public static void Run(Problem<T> p, GemmPath path)
    {
        if (p.SumsA != null)
        {
            new Span<T>(p.SumsA, p.M).Clear();
            if (p.N == 0 || p.K == 0 || p.Alpha == T.Zero)
            {
                AddRowSums(p); // no packing to take them from
                p = p with { SumsA = null };
            }
        }
        if (p.N == 0) return;
        if (p.K == 0 || p.Alpha == T.Zero)
        {
            for (int i = 0; i < p.Count; i++) ScaleC(p.Item(i));
            return;
        }
        long macs = (long)p.M * p.N * p.K;
        if (p.Count > 1 && macs < SmallItem)
        {
            if (macs * p.Count >= Gemm.ParallelThreshold && KernelThreads.Count > 1)
            {
                var whole = p;
                KernelThreads.Run(p.Count, i => Single(whole.Item(i), parallel: false, path));
            }
            else
            {
                for (int i = 0; i < p.Count; i++) Single(p.Item(i), parallel: false, path);
            }
            return;
        }
        if (p.Count == 1 && DepthParts(p) is int parts and > 1)
        {
            SplitDepth(p, parts, path);
            return;
        }
        bool parallel = macs >= Gemm.ParallelThreshold && KernelThreads.Count > 1;
        if (parallel && p.Count == 1 && Slabs(p) is { Count: > 1 } slabs)
        {
            var job = _slabJob ??= new SlabJob();
            job.Set(p, slabs, path);
            KernelThreads.Run(slabs.Count, job.Task);
            return;
        }
        if (p.Count == 1) Single(p, parallel, path); // keeps the row sums, which batches do not have
        else for (int i = 0; i < p.Count; i++) Single(p.Item(i), parallel, path);
    }

    /// <summary>
    /// How a large product is cut into one slab per thread, each slab the serial blocked loops on its own thread with its
    /// own packed blocks (Count 1: not cut). Cut along n (each thread then packs all of A, (T − 1)/n more work, and a B
    /// block of n/T columns), or along m (<c>Rows</c>) when m ≥ 2n or n has too few panels (each thread packs all of B: a
    /// square product's row slabs were 3-8 % slower than its column slabs, a tall one's faster); at most one slab per
    /// thread, at least 8 panels a slab, from 2²⁴ multiply-adds. Spread over the tasks of shared k blocks instead, a product
    /// waits at two barriers per k block and each core reads the half of the packed B the other one packed; as slabs, the
    /// two cores of a Zen 5 ran gemm-1024 at 382 instead of 347 GFLOP/s, gemm-2048 at 387 instead of 366, and mlp-wide's
    /// 128-row products 18-46 % faster (<c>GradFlow.Benchmarks --profile slabs</c>). Slab edges fall on panel edges, so
    /// every tile, k block and epilogue is the one of the uncut product: the numbers do not depend on the thread count.
    /// </summary>
    private static (int Count, bool Rows, int Panels) Slabs(Problem<T> p)
    {
        if (!Slabbing || (long)p.M * p.N * p.K < 1L << 24) return (1, false, 0);
        bool rows = p.M >= 2L * p.N || p.N < 16 * TKernel.NR;
        int panels = rows ? (p.M + TKernel.MR - 1) / TKernel.MR : (p.N + TKernel.NR - 1) / TKernel.NR;
        return (Math.Min(KernelThreads.Count, panels / 8), rows, panels);
    }

    /// <summary>Whether large products are cut into per-thread slabs (<see cref="Slabs"/>); off only for the profile's A/B.</summary>
    internal static bool Slabbing = true;

    /// <summary>
    /// Whether the packed loops read op(A) in place instead of packing it (only a last partial row panel is packed):
    /// A not transposed, not rounded to bf16, and its rows not 4 KiB apart or a multiple of it. A tile's MR rows are then
    /// spread over at least 4 of L1's 4 KiB set groups (a row stride of 1 or 3 KiB: transformer-small's 256- and 768-wide
    /// activations); at a multiple of 4 KiB all MR rows fall in one set group and conflict. Same tiles, same k blocks,
    /// same sums: the result is bitwise that of the packed A. On a Zen 5, 2 threads, <c>--profile slabs</c>: transformer
    /// qkv forward 341 → 358 GFLOP/s, qkv dX 297 → 316; at a 4 KiB stride (ff2 forward) 307 → 255, hence the rule.
    /// </summary>
    private static bool ReadsAInPlace(Problem<T> p)
    {
        if (!Gemm.InPlaceA || !TKernel.HasDirect || p.TransA || p.RoundBf16 || p.SumsA != null) return false;
        long bytes = (long)p.Lda * sizeof(T);
        return 4096 / Math.Min(4096, bytes & -bytes) >= 4; // set groups the rows cycle through: 4 KiB / gcd(stride, 4 KiB)
    }

    [ThreadStatic] private static SlabJob? _slabJob;

    /// <summary>Slab t of the calling thread's current product: panels [panels·t/slabs, panels·(t+1)/slabs) of its rows or columns.</summary>
    /// <remarks>One per calling thread, reused by every call (no allocation per GEMM).</remarks>
    private sealed class SlabJob
    {
        private Problem<T> _p;
        private (int Count, bool Rows, int Panels) _slabs;
        private GemmPath _path;
        public readonly Action<int> Task;

        public SlabJob() => Task = Run;

        public void Set(Problem<T> p, (int Count, bool Rows, int Panels) slabs, GemmPath path) => (_p, _slabs, _path) = (p, slabs, path);

        private void Run(int t)
        {
            var (count, rows, panels) = _slabs;
            int width = rows ? TKernel.MR : TKernel.NR, extent = rows ? _p.M : _p.N;
            int j0 = (int)((long)panels * t / count) * width, j1 = Math.Min(extent, (int)((long)panels * (t + 1) / count) * width);
            Single(rows ? _p.RowSlice(j0, j1 - j0) : _p.ColumnSlice(j0, j1 - j0), parallel: false, _path);
        }
    }

    /// <summary>Depth from which a small-output product is cut along k: 4 blocks of the tile's KC.</summary>
    private static int SplitDepthFrom => 4 * TKernel.KC;

    /// <summary>
    /// Parts a product is cut into along k, by shape only: a deep product (k ≥ 4·KC) with a small output (m·n ≤ 2¹⁸),
    /// such as the weight gradient of a layer over a batch of 4 096 tokens, is cut into up to 4 parts of whole KC blocks,
    /// at least 2 blocks each; anything with a bias or an activation is not. Such a product's blocks, split over rows and
    /// columns, each give the threads a few tenths of a millisecond of work between two synchronisations (a thread that
    /// joins late leaves the other a whole task more), and its B block has few panels to share: cut along k, each part runs
    /// start to end on one thread. transformer-small's qkv and ff1 weight gradients (768 and 1 024 rows, 256 columns,
    /// k = 4 096) went from 161 and 159 to 185 and 180 GFLOP/s on 2 threads when the former limit of 3 MC blocks of rows
    /// was lifted (<c>GradFlow.Benchmarks --profile blocking-dw</c>).
    /// </summary>
    private static int DepthParts(Problem<T> p)
    {
        if (p.K < SplitDepthFrom || p.Bias != null || p.Activation != FusedActivation.None) return 1;
        if ((long)p.M * p.N > 1 << 18 || (long)p.M * p.N * p.K < Gemm.DirectMacs) return 1;
        return Math.Min(4, p.K / (2 * TKernel.KC));
    }

    /// <summary>Partial products of the parts after the first, summed into C in part order.</summary>
    [ThreadStatic] private static T[]? _partials;

    /// <summary>The calling thread's cut product (one at a time; no allocation per call).</summary>
    [ThreadStatic] private static DepthJob? _depthJob;

    /// <summary>
    /// C = beta·C + Σ parts: part 0 into C (with beta), parts 1.. into scratch matrices, each part a task of the kernel
    /// threads run serially on its thread; then the partials are added to C in part order. The cut depends on the
    /// shape only, so the numbers are the same for any thread count.
    /// </summary>
    private static void SplitDepth(Problem<T> p, int parts, GemmPath path)
    {
        int size = p.M * p.N;
        // the parts' C, then (with row sums) their sums of op(A)'s rows, zeroed
        int need = (parts - 1) * (size + (p.SumsA == null ? 0 : p.M));
        if (_partials is null || _partials.Length < need)
            _partials = GC.AllocateUninitializedArray<T>(need, pinned: true);
        if (p.SumsA != null) _partials.AsSpan((parts - 1) * size, (parts - 1) * p.M).Clear();
        fixed (T* scratch = _partials)
        {
            var job = _depthJob ??= new DepthJob();
            // the partial sums go by runs of rows on the kernel threads (each element's sum in part order, whatever the cut),
            // as many runs as threads, the count read once here: another thread may set it while this job runs inline, and a
            // cut re-read per task summed rows past the end of C
            job.Set(p, parts, path, scratch, sumRuns: KernelThreads.Count);
            KernelThreads.Run(parts, job.Task);
            KernelThreads.Run(job.SumRuns, job.SumTask);
        }
    }

    /// <summary>Task t of a cut product: depths of whole KC blocks [blocks·t/parts, blocks·(t+1)/parts), serially on its thread.</summary>
    private sealed class DepthJob
    {
        private Problem<T> _p;
        private int _parts;
        private GemmPath _path;
        private T* _scratch;
        public readonly Action<int> Task;

        /// <summary>Task t of <see cref="SumRuns"/>: a run of C's rows.</summary>
        public readonly Action<int> SumTask;

        /// <summary>The runs of rows <see cref="SumTask"/> cuts C into.</summary>
        public int SumRuns { get; private set; }

        public DepthJob()
        {
            Task = Run;
            SumTask = t => Sum((int)((long)_p.M * t / SumRuns), (int)((long)_p.M * (t + 1) / SumRuns));
        }

        public void Set(Problem<T> p, int parts, GemmPath path, T* scratch, int sumRuns)
        {
            (_p, _parts, _path, SumRuns) = (p, parts, path, sumRuns);
            _scratch = scratch;
        }

        /// <summary>The row sums of part t ≥ 1, after all the parts' partial products.</summary>
        private T* PartSums(int t) => _scratch + (nint)(_parts - 1) * _p.M * _p.N + (nint)(t - 1) * _p.M;

        /// <summary>Rows [i0, i1) of C (and of the row sums) += those of parts 1.., in part order (any row cut gives the same bits).</summary>
        private void Sum(int i0, int i1)
        {
            int size = _p.M * _p.N;
            for (int t = 1; t < _parts; t++)
            {
                T* src = _scratch + (nint)(t - 1) * size;
                for (int i = i0; i < i1; i++)
                {
                    var row = new Span<T>(_p.C + (nint)i * _p.Ldc, _p.N);
                    System.Numerics.Tensors.TensorPrimitives.Add(row, new ReadOnlySpan<T>(src + (nint)i * _p.N, _p.N), row);
                }
                if (_p.SumsA != null)
                {
                    var sums = new Span<T>(_p.SumsA + i0, i1 - i0);
                    System.Numerics.Tensors.TensorPrimitives.Add(sums, new ReadOnlySpan<T>(PartSums(t) + i0, i1 - i0), sums);
                }
            }
        }

        private void Run(int t)
        {
            int kc = TKernel.KC, blocks = (_p.K + kc - 1) / kc;
            int k0 = (int)((long)blocks * t / _parts) * kc, k1 = Math.Min(_p.K, (int)((long)blocks * (t + 1) / _parts) * kc);
            var part = t == 0 ? _p.DepthSlice(k0, k1 - k0, _p.Beta, _p.C, _p.Ldc, _p.SumsA)
                : _p.DepthSlice(k0, k1 - k0, T.Zero, _scratch + (nint)(t - 1) * _p.M * _p.N, _p.N, _p.SumsA == null ? null : PartSums(t));
            Single(part, parallel: false, _path);
        }
    }

    /// <summary>C = beta·C (k = 0 or alpha = 0); beta = 0 writes zeros without reading C.</summary>
    private static void ScaleC(Problem<T> p)
    {
        for (int i = 0; i < p.M; i++)
        {
            var row = new Span<T>(p.C + (nint)i * p.Ldc, p.N);
            if (p.Beta == T.Zero) row.Clear();
            else if (p.Beta != T.One)
                for (int j = 0; j < row.Length; j++) row[j] *= p.Beta;
        }
    }

    /// <summary><c>SumsA[i] += Σ_p op(A)[i, p]</c> read from A as it is (the loops that do not pack op(A)'s rows).</summary>
    private static void AddRowSums(Problem<T> p)
    {
        var sums = new Span<T>(p.SumsA, p.M);
        if (p.TransA && p.Lda == p.M && typeof(T) == typeof(float))
        {
            // op(A)'s rows are the columns of a contiguous K×M matrix: the column sums of the reduce kernel (a bias
            // gradient summed as without the GEMM), written over the sums: these loops take all the depths of rows at zero
            var all = new ReadOnlySpan<float>(p.A, p.K * p.M);
            var s = MemoryMarshal.Cast<T, float>(sums);
            if (p.K > 0) ReduceKernels.Sum(all, 1, p.K, p.M, s);
            return;
        }
        if (p.TransA)
        {
            // op(A)'s rows are A's columns: add A's rows, each contiguous
            for (int q = 0; q < p.K; q++)
                System.Numerics.Tensors.TensorPrimitives.Add(sums, new ReadOnlySpan<T>(p.A + (nint)q * p.Lda, p.M), sums);
            return;
        }
        for (int i = 0; i < p.M; i++) sums[i] += System.Numerics.Tensors.TensorPrimitives.Sum(new ReadOnlySpan<T>(p.A + (nint)i * p.Lda, p.K));
    }

    /// <summary>One matrix (Count = 1), optionally spread over the kernel threads.</summary>
    private static void Single(Problem<T> p, bool parallel, GemmPath path)
    {
        int mr = TKernel.MR, nr = TKernel.NR, kcMax = TKernel.KC;
        int panelsM = (p.M + mr - 1) / mr;
        int mTasks = (panelsM + TKernel.MC / mr - 1) / (TKernel.MC / mr);
        if (mTasks > 1 && (mTasks & 1) == 1 && mTasks < panelsM) mTasks++;
        // the small-GEMM loops read the operands in place: bf16 operands need the packed loops, which round as they pack
        if (TKernel.HasDirect && !p.RoundBf16 && (path == GemmPath.Direct || path == GemmPath.Auto && UseDirect(p, mTasks)))
        {
            if (p.SumsA != null) AddRowSums(p);
            Direct(p, parallel);
            return;
        }
        var job = _job ??= new Job();
        job.Reset(p, panelsM, mTasks);
        for (int jc = 0; jc < p.N; jc += Gemm.NC)
        {
            int nc = Math.Min(Gemm.NC, p.N - jc);
            int panelsN = (nc + nr - 1) / nr;
            int nChunks = 1;
            if (parallel && mTasks < 4) nChunks = Math.Max(1, Math.Min((4 + mTasks - 1) / mTasks, panelsN / 4));
            job.SetColumns(jc, nc, panelsN, nChunks);
            int needB = panelsN * nr * Math.Min(kcMax, p.K);
            if (_packB is null || _packB.Length < needB) _packB = GC.AllocateUninitializedArray<T>(needB, pinned: true);
            // Column chunks share their row panels: A is then packed once per block, by the packing job, instead of
            // once by every chunk's task (with 4 chunks, three of four packings of A were repeats).
            bool sharedA = parallel && nChunks > 1 && !ReadsAInPlace(p);
            if (sharedA)
            {
                int needA = panelsM * mr * Math.Min(kcMax, p.K);
                if (_sharedA is null || _sharedA.Length < needA) _sharedA = GC.AllocateUninitializedArray<T>(needA, pinned: true);
            }
            fixed (T* packB = _packB, packedA = _sharedA)
            {
                job.PackedB = packB;
                job.SharedA = sharedA ? packedA : null;
                for (int pc = 0; pc < p.K; pc += kcMax)
                {
                    job.SetDepth(pc, Math.Min(kcMax, p.K - pc));
                    int tasks = mTasks * nChunks;
                    // Packing a small B block costs less than a round trip through the pool.
                    bool largeB = (long)panelsN * nr * kcMax >= PackInParallel;
                    if (parallel && (largeB || sharedA))
                    {
                        // Groups of 16 column panels, each cut along the depth into parts when there are fewer
                        // than 4 groups (a B of up to 48 panels would otherwise be packed by one thread while
                        // the others wait: a quarter of the dW GEMMs of a 256-wide layer), then the shared A's
                        // panels in fours. Copies only: any cut gives the same packed blocks.
                        int groups = (panelsN + 15) / 16;
                        job.SetPackParts(groups >= 4 || !largeB ? 1 : Math.Min((4 + groups - 1) / groups, Math.Max(1, job.Depth / 64)));
                        KernelThreads.Run(job.PackTasks, job.PackTask);
                    }
                    else
                    {
                        job.SetPackParts(1);
                        for (int t = 0, bTasks = (panelsN + 15) / 16; t < bTasks; t++) job.PackB(t);
                    }
                    if (parallel) KernelThreads.Run(tasks, job.ComputeTask);
                    else for (int t = 0; t < tasks; t++) job.Compute(t);
                }
            }
        }
    }

    /// <summary>
    /// Auto choice of the small-GEMM path: at most <see cref="Gemm.DirectMacs"/> multiply-adds and one
    /// row block of the packed loops (at most MC rows, e.g. every GEMM of a 64-wide layer, a recurrent
    /// step, a linear layer on a batch of ≤ 144 rows with ≤ 1024 features). There packing costs a large
    /// share of the multiply and the operands fit L1/L2 as they are. Depends on the shape only.
    /// </summary>
    private static bool UseDirect(Problem<T> p, int mTasks) =>
        (long)p.M * p.N * p.K <= Gemm.DirectMacs && mTasks == 1;

    /// <summary>
    /// The small-GEMM path (one matrix): the loops of <see cref="Single"/> without the packing of
    /// operands the micro-kernel can read in place, the column panels split into an even number of
    /// chunks (by shape: up to 8) that the kernel threads run when <paramref name="parallel"/>.
    /// </summary>
    private static void Direct(Problem<T> p, bool parallel)
    {
        int panelsN = (p.N + TKernel.NR - 1) / TKernel.NR;
        int chunks = panelsN < 2 ? 1 : Math.Min(panelsN, 8) & ~1;
        if (!parallel || chunks == 1)
        {
            DirectColumns(p, 0, panelsN);
            return;
        }
        var job = _directJob ??= new DirectJob();
        job.Set(p, panelsN, chunks);
        KernelThreads.Run(chunks, job.Task);
    }

    /// <summary>The small-GEMM loops of the calling thread's current matrix, one task per column chunk.</summary>
    private sealed class DirectJob
    {
        private Problem<T> _p;
        private int _panelsN, _chunks;
        public readonly Action<int> Task;

        public DirectJob() => Task = t => DirectColumns(_p, (int)((long)t * _panelsN / _chunks), (int)((long)(t + 1) * _panelsN / _chunks));

        public void Set(Problem<T> p, int panelsN, int chunks) => (_p, _panelsN, _chunks) = (p, panelsN, chunks);
    }

    [ThreadStatic] private static DirectJob? _directJob;

    /// <summary>
    /// Column panels [q0, q1) of the small-GEMM path, on the calling thread: op(A) row panels are read
    /// through strides (transposed or not); op(B) is read in place unless transposed. Packed (into the
    /// running thread's buffers) are only op(B) when transposed (W of a linear layer's forward), a last
    /// partial column panel and the last partial row panel (zero-padded, one MR×KC block per k block).
    /// Tiles, k blocks and epilogues are those of the packed path, so the result is bitwise the same.
    /// </summary>
    // the tile is written by the micro-kernel (beta 0) before it is read: no zeroing of the stack frame
    [SkipLocalsInit]
    private static void DirectColumns(Problem<T> p, int q0, int q1)
    {
        int mr = TKernel.MR, nr = TKernel.NR, kcMax = TKernel.KC;
        int panelsN = (p.N + nr - 1) / nr;
        int fullRows = p.M / mr * mr, lastCols = p.N - (panelsN - 1) * nr;
        nint rsA = p.TransA ? 1 : p.Lda, csA = p.TransA ? p.Lda : 1;
        int kc0 = Math.Min(kcMax, p.K);
        int needB = (p.TransB ? q1 - q0 : 1) * nr * kc0;
        if (_packB is null || _packB.Length < needB) _packB = GC.AllocateUninitializedArray<T>(needB, pinned: true);
        if (_packA is null || _packA.Length < mr * kc0)
            _packA = GC.AllocateUninitializedArray<T>(Math.Max(mr * kc0, (TKernel.MC + mr) * TKernel.KC), pinned: true);
        // the causal structure of A is used within one k block only (a skipped block would still owe C its beta)
        var causal = p.Causal == GemmCausal.LowerC || p.K <= kcMax ? p.Causal : GemmCausal.None;
        fixed (T* packB = _packB, packA = _packA)
        {
            T* tile = stackalloc T[mr * nr];
            for (int pc = 0; pc < p.K; pc += kcMax)
            {
                int kc = Math.Min(kcMax, p.K - pc);
                T beta = pc == 0 ? p.Beta : T.One;
                T* bias = pc == 0 ? p.Bias : null;
                bool last = pc + kc == p.K && p.Activation != FusedActivation.None;
                if (p.TransB)
                {
                    for (int jp = q0; jp < q1; jp++)
                        GemmPack.PackB(p.B, p.Ldb, true, pc, kc, jp * nr, Math.Min(nr, p.N - jp * nr), nr, packB + (nint)(jp - q0) * nr * kc);
                }
                else if (lastCols < nr && q1 == panelsN)
                {
                    GemmPack.PackB(p.B, p.Ldb, false, pc, kc, (panelsN - 1) * nr, lastCols, nr, packB);
                }
                if (fullRows < p.M) GemmPack.PackA(p.A, p.Lda, p.TransA, fullRows, p.M - fullRows, pc, kc, mr, packA);
                T* aBlock = p.A + (p.TransA ? (nint)pc * p.Lda : pc);
                for (int jp = q0; jp < q1; jp++)
                {
                    int j0 = jp * nr, cols = Math.Min(nr, p.N - j0);
                    bool inPlace = !p.TransB && cols == nr;
                    T* bp = inPlace ? p.B + (nint)pc * p.Ldb + j0 : p.TransB ? packB + (nint)(jp - q0) * nr * kc : packB;
                    nint ldb = inPlace ? p.Ldb : nr;
                    for (int i0 = 0; i0 < p.M; i0 += mr)
                    {
                        int rows = Math.Min(mr, p.M - i0);
                        if (causal == GemmCausal.LowerC && j0 > i0 + rows - 1) continue;
                        T* ap = rows == mr ? aBlock + i0 * rsA : packA;
                        nint rs = rows == mr ? rsA : 1, cs = rows == mr ? csA : mr;
                        // the depths where op(A)'s rows of this tile can be nonzero: [k0, k1) of this block
                        int k0 = causal == GemmCausal.AUpper ? Math.Min(i0, kc - 1) : 0;
                        int k1 = causal == GemmCausal.ALower ? Math.Min(kc, i0 + rows) : kc;
                        T* at = ap + k0 * cs, bt = bp + k0 * ldb;
                        T* c = p.C + (nint)i0 * p.Ldc + j0;
                        if (bias is not null)
                        {
                            TKernel.RunDirect(k1 - k0, at, rs, cs, bt, ldb, tile, nr, p.Alpha, T.Zero);
                            StoreWithBias(tile, c, p.Ldc, rows, cols, bias + j0);
                        }
                        else if (rows == mr && cols == nr) TKernel.RunDirect(k1 - k0, at, rs, cs, bt, ldb, c, p.Ldc, p.Alpha, beta);
                        else
                        {
                            TKernel.RunDirect(k1 - k0, at, rs, cs, bt, ldb, tile, nr, p.Alpha, T.Zero);
                            MergeTile(tile, c, p.Ldc, rows, cols, beta);
                        }
                        if (last) GemmEpilogue.Apply(p.Activation, c, p.Ldc, rows, cols);
                    }
                }
            }
        }
    }

    /// <summary>State of one matrix's blocked loops, shared by its tasks for the current (jc, pc) block.</summary>
    /// <remarks>One per calling thread, reused by every call (no allocation per GEMM): a thread runs one matrix at a time.</remarks>
    private sealed class Job
    {
        private Problem<T> _p;
        private int _panelsM, _mTasks;
        private int _jc, _nc, _panelsN, _nChunks, _pc, _kc;
        private T _beta;

        public T* PackedB;

        /// <summary>All row panels of A for the current block, packed by the packing job (null: each task packs its own).</summary>
        public T* SharedA;

        public readonly Action<int> PackTask, ComputeTask;

        public Job()
        {
            PackTask = Pack;
            ComputeTask = Compute;
        }

        /// <summary>Tasks of the packing job: B's (groups × parts), then the shared A's panels in fours.</summary>
        public int PackTasks => BPackTasks + (SharedA is null ? 0 : (_panelsM + 3) / 4);

        private int BPackTasks => (_panelsN + 15) / 16 * _packParts;

        private void Pack(int t)
        {
            int b = BPackTasks;
            if (t < b)
            {
                PackB(t);
                return;
            }
            int mr = TKernel.MR;
            int first = 4 * (t - b), end = Math.Min(_panelsM, first + 4);
            GemmPack.PackAPanels(_p.A, _p.Lda, _p.TransA, first * mr, Math.Min(_p.M, end * mr) - first * mr, _pc, _kc, mr, SharedA + (nint)first * mr * _kc,
                SumsFor(first));
            if (_p.RoundBf16) BFloat16.Round((float*)(SharedA + (nint)first * mr * _kc), (end - first) * mr * _kc, KernelIsa.Best);
        }

        public void Reset(Problem<T> p, int panelsM, int mTasks) => (_p, _panelsM, _mTasks) = (p, panelsM, mTasks);

        /// <summary>Where the row sums of the panels from <paramref name="panel"/> on go: only in the first column block, which packs every row once per k block.</summary>
        private T* SumsFor(int panel) => _p.SumsA == null || _jc != 0 ? null : _p.SumsA + (nint)panel * TKernel.MR;

        public void SetColumns(int jc, int nc, int panelsN, int nChunks) => (_jc, _nc, _panelsN, _nChunks) = (jc, nc, panelsN, nChunks);

        public void SetDepth(int pc, int kc)
        {
            (_pc, _kc) = (pc, kc);
            _beta = pc == 0 ? _p.Beta : T.One;
            _bias = pc == 0 ? _p.Bias : null;
        }

        /// <summary>The bias row vector while the first k block is applied (C is then written as A·B + bias), else null.</summary>
        private T* _bias;

        private int _packParts = 1;

        /// <summary>Depth of the current k block.</summary>
        public int Depth => _kc;

        /// <summary>Parts the depth of each 16-panel group is cut into for packing B (1: whole groups).</summary>
        public int PackParts => _packParts;

        public void SetPackParts(int parts) => _packParts = parts;

        /// <summary>
        /// Packing task t: column panels [16g, 16g + 16) of the current block, g = t / PackParts, rows [p0, p1) of
        /// their depth, part t % PackParts (cut at multiples of 8 for the 8×8 transposes); rounded to bf16 when the
        /// problem asks.
        /// </summary>
        public void PackB(int t)
        {
            int g = t / _packParts, part = t % _packParts;
            int p0 = part == 0 ? 0 : (int)((long)_kc * part / _packParts) & ~7;
            int p1 = part == _packParts - 1 ? _kc : (int)((long)_kc * (part + 1) / _packParts) & ~7;
            if (p0 >= p1) return;
            PackBPanels(g, p0, p1);
            if (_p.RoundBf16)
            {
                int nr = TKernel.NR;
                for (int jp = 16 * g, end = Math.Min(_panelsN, 16 * g + 16); jp < end; jp++)
                    BFloat16.Round((float*)(PackedB + ((nint)jp * _kc + p0) * nr), (p1 - p0) * nr, KernelIsa.Best);
            }
        }

        private void PackBPanels(int g, int p0, int p1)
        {
            int nr = TKernel.NR;
            int end = Math.Min(_panelsN, 16 * g + 16);
            if (!_p.TransB)
            {
                // Row by row of B: sequential reads, each row spread over the panels' rows.
                int full = end;
                while (full > 16 * g && _jc + full * nr > _jc + _nc) full--;
                for (int p = p0; p < p1; p++)
                {
                    T* src = _p.B + (nint)(_pc + p) * _p.Ldb + _jc;
                    for (int jp = 16 * g; jp < full; jp++)
                        Unsafe.CopyBlockUnaligned(PackedB + ((nint)jp * _kc + p) * nr, src + (nint)jp * nr, (uint)(nr * sizeof(T)));
                }
                for (int jp = full; jp < end; jp++)
                {
                    int j0 = _jc + jp * nr;
                    GemmPack.PackB(_p.B, _p.Ldb, false, _pc + p0, p1 - p0, j0, Math.Min(nr, _jc + _nc - j0), nr, PackedB + ((nint)jp * _kc + p0) * nr);
                }
                return;
            }
            for (int jp = 16 * g; jp < end; jp++)
            {
                int j0 = _jc + jp * nr;
                GemmPack.PackB(_p.B, _p.Ldb, _p.TransB, _pc + p0, p1 - p0, j0, Math.Min(nr, _jc + _nc - j0), nr, PackedB + ((nint)jp * _kc + p0) * nr);
            }
        }

        /// <summary>Task t: row panels of part t / nChunks times column panels of chunk t % nChunks.</summary>
        [SkipLocalsInit] // the tile is written by the micro-kernel (beta 0) before it is read
        public void Compute(int t)
        {
            int mr = TKernel.MR, nr = TKernel.NR;
            int im = t / _nChunks, jn = t % _nChunks;
            int p0 = (int)((long)im * _panelsM / _mTasks), p1 = (int)((long)(im + 1) * _panelsM / _mTasks);
            int q0 = (int)((long)jn * _panelsN / _nChunks), q1 = (int)((long)(jn + 1) * _panelsN / _nChunks);
            if (p0 == p1 || q0 == q1) return;
            bool last = _pc + _kc == _p.K && _p.Activation != FusedActivation.None;
            int need = (p1 - p0) * mr * _kc;
            bool directA = ReadsAInPlace(_p);
            if (SharedA is null && (_packA is null || _packA.Length < need))
                _packA = GC.AllocateUninitializedArray<T>(Math.Max(need, (TKernel.MC + mr) * TKernel.KC), pinned: true);
            fixed (T* ownA = _packA)
            {
                T* packA = ownA;
                if (SharedA is not null) packA = SharedA + (nint)p0 * mr * _kc; // panels p0..p1 of the shared block
                else if (directA)
                {
                    // only a last partial row panel is packed (zero-padded), at the start of the thread's buffer
                    if (Math.Min(_p.M, p1 * mr) - (p1 - 1) * mr < mr)
                        GemmPack.PackAPanels(_p.A, _p.Lda, false, (p1 - 1) * mr, _p.M - (p1 - 1) * mr, _pc, _kc, mr, packA);
                }
                else
                {
                    GemmPack.PackAPanels(_p.A, _p.Lda, _p.TransA, p0 * mr, Math.Min(_p.M, p1 * mr) - p0 * mr, _pc, _kc, mr, packA, SumsFor(p0));
                    if (_p.RoundBf16) BFloat16.Round((float*)packA, need, KernelIsa.Best);
                }
                T* tile = stackalloc T[mr * nr];
                int sub = SubBlocksFor(_p.M, _nc, readsC: _beta != T.Zero && _bias is null);
                for (int jb = q0; jb < q1; jb += sub)
                for (int ip = p0; ip < p1; ip++)
                {
                    int i0 = ip * mr;
                    int rows = Math.Min(mr, _p.M - i0);
                    for (int jp = jb, jEnd = Math.Min(q1, jb + sub); jp < jEnd; jp++)
                    {
                        int j0 = _jc + jp * nr;
                        int cols = Math.Min(nr, _jc + _nc - j0);
                        T* bp = PackedB + (nint)jp * nr * _kc;
                        T* c = _p.C + (nint)i0 * _p.Ldc + j0;
                        if (directA && SharedA is null && rows == mr)
                        {
                            T* ad = _p.A + (nint)i0 * _p.Lda + _pc;
                            if (_bias is not null)
                            {
                                TKernel.RunDirect(_kc, ad, _p.Lda, 1, bp, nr, tile, nr, _p.Alpha, T.Zero);
                                StoreWithBias(tile, c, _p.Ldc, rows, cols, _bias + j0);
                            }
                            else if (cols == nr) TKernel.RunDirect(_kc, ad, _p.Lda, 1, bp, nr, c, _p.Ldc, _p.Alpha, _beta);
                            else
                            {
                                TKernel.RunDirect(_kc, ad, _p.Lda, 1, bp, nr, tile, nr, _p.Alpha, T.Zero);
                                MergeTile(tile, c, _p.Ldc, rows, cols, _beta);
                            }
                            if (last) GemmEpilogue.Apply(_p.Activation, c, _p.Ldc, rows, cols);
                            continue;
                        }
                        T* ap = directA && SharedA is null ? packA : packA + (nint)(ip - p0) * mr * _kc;
                        if (_bias is not null)
                        {
                            TKernel.Run(_kc, ap, bp, tile, nr, _p.Alpha, T.Zero);
                            StoreWithBias(tile, c, _p.Ldc, rows, cols, _bias + j0);
                        }
                        else if (rows == mr && cols == nr) TKernel.Run(_kc, ap, bp, c, _p.Ldc, _p.Alpha, _beta);
                        else
                        {
                            TKernel.Run(_kc, ap, bp, tile, nr, _p.Alpha, T.Zero);
                            MergeTile(tile, c, _p.Ldc, rows, cols, _beta);
                        }
                        if (last) GemmEpilogue.Apply(_p.Activation, c, _p.Ldc, rows, cols);
                    }
                }
            }
        }
    }

    /// <summary>C[r, j] = tile[r, j] + bias[j] for the tile's rows×cols (the tile is in L1; one pass, no read of C).</summary>
    private static void StoreWithBias(T* tile, T* c, int ldc, int rows, int cols, T* bias)
    {
        int nr = TKernel.NR;
        if (typeof(T) == typeof(float) && Vector256.IsHardwareAccelerated && cols == nr && nr % 8 == 0)
        {
            for (int r = 0; r < rows; r++)
            {
                float* dst = (float*)c + (nint)r * ldc, src = (float*)tile + r * nr;
                for (int j = 0; j < nr; j += 8)
                    Vector256.Store(Vector256.Load(src + j) + Vector256.Load((float*)bias + j), dst + j);
            }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            T* dst = c + (nint)r * ldc;
            T* src = tile + r * nr;
            for (int j = 0; j < cols; j++) dst[j] = src[j] + bias[j];
        }
    }

    /// <summary>A partial tile: rows×cols of the full tile (alpha·A·B, in a scratch buffer) merged into C with beta.</summary>
    private static void MergeTile(T* tile, T* c, int ldc, int rows, int cols, T beta)
    {
        int nr = TKernel.NR;
        for (int r = 0; r < rows; r++)
        {
            T* dst = c + (nint)r * ldc;
            T* src = tile + r * nr;
            if (beta == T.Zero)
                for (int j = 0; j < cols; j++) dst[j] = src[j];
            else if (beta == T.One)
                for (int j = 0; j < cols; j++) dst[j] = src[j] + dst[j];
            else
                for (int j = 0; j < cols; j++) dst[j] = src[j] + beta * dst[j];
        }
    }
}

/// <summary>The activation of a fused GEMM epilogue, applied in place to rows of C with the element-wise kernels.</summary>
internal static unsafe class GemmEpilogue
{
    /// <summary>C[r, 0..cols) = act(C[r, 0..cols)) for r in 0..rows (float or double; nothing for None).</summary>
    public static void Apply<T>(FusedActivation act, T* c, int ldc, int rows, int cols) where T : unmanaged
    {
        if (act == FusedActivation.None) return;
        for (int r = 0; r < rows; r++)
        {
            if (typeof(T) == typeof(float)) Apply(act, new Span<float>((float*)c + (nint)r * ldc, cols));
            else Apply(act, new Span<double>((double*)c + (nint)r * ldc, cols));
        }
    }

    /// <summary>y = act(y) in place.</summary>
    public static void Apply<T>(FusedActivation act, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (act)
        {
            case FusedActivation.Relu: ActivationKernels.Relu<T>(y, y); break;
            case FusedActivation.Tanh: ActivationKernels.Tanh<T>(y, y); break;
            case FusedActivation.Sigmoid: ActivationKernels.Sigmoid<T>(y, y); break;
        }
    }
}

/// <summary>Packing of op(A) row panels and op(B) column panels (transposes are absorbed here).</summary>
internal static unsafe class GemmPack
{
    /// <summary>
    /// Rows [i0, i0 + rows) × depth [p0, p0 + kc) of op(A) into <c>dst[p·mr + r]</c>, rows ≥ <paramref name="rows"/> zero.
    /// op(A)(i, p) is <c>a[i·lda + p]</c>, or <c>a[p·lda + i]</c> when transposed.
    /// </summary>
    public static void PackA<T>(T* a, int lda, bool trans, int i0, int rows, int p0, int kc, int mr, T* dst) where T : unmanaged, INumber<T>
    {
        if (trans)
        {
            PackATransposed(a, lda, i0, rows, p0, kc, mr, dst);
            return;
        }
        int done = 0;
        if (typeof(T) == typeof(float) && Avx.IsSupported)
        {
            // 8 rows × 8 depths at a time (then 4 × 4): row loads, an in-register transpose, contiguous stores
            // into the panel, instead of one strided scalar store per element.
            int kc8 = kc & ~7, kc4 = kc & ~3;
            for (; done + 8 <= rows; done += 8)
            {
                float* src = (float*)a + (nint)(i0 + done) * lda + p0;
                float* d = (float*)dst + done;
                for (int p = 0; p < kc8; p += 8) Transpose8x8(src + p, lda, d + (nint)p * mr, mr);
                for (int r = 0; r < 8; r++)
                    for (int p = kc8; p < kc; p++) d[(nint)p * mr + r] = src[(nint)r * lda + p];
            }
            for (; done + 4 <= rows; done += 4)
            {
                float* src = (float*)a + (nint)(i0 + done) * lda + p0;
                float* d = (float*)dst + done;
                for (int p = 0; p < kc4; p += 4) Transpose4x4(src + p, lda, d + (nint)p * mr, mr);
                for (int r = 0; r < 4; r++)
                    for (int p = kc4; p < kc; p++) d[(nint)p * mr + r] = src[(nint)r * lda + p];
            }
        }
        for (int r = done; r < rows; r++)
        {
            T* src = a + (nint)(i0 + r) * lda + p0;
            T* d = dst + r;
            for (int p = 0; p < kc; p++) d[(nint)p * mr] = src[p];
        }
        for (int r = rows; r < mr; r++)
            for (int p = 0; p < kc; p++) dst[(nint)p * mr + r] = T.Zero;
    }

    /// <summary>
    /// Rows [i0, i0 + rows) of op(A) as ⌈rows/mr⌉ consecutive panels (panel q at <c>dst + q·mr·kc</c>, each as
    /// <see cref="PackA{T}"/> packs it): the panels a task or a packing job packs in one go.
    /// </summary>
    /// <remarks>
    /// With <paramref name="sums"/> (null: none), <c>sums[r] += Σ_p op(A)[i0 + r, p0 + p]</c> for r &lt; rows, read back
    /// from each packed panel while it is in cache (depth by depth, then added: the order depends on the blocking only).
    /// </remarks>
    public static void PackAPanels<T>(T* a, int lda, bool trans, int i0, int rows, int p0, int kc, int mr, T* dst, T* sums = null)
        where T : unmanaged, INumber<T>
    {
        if (trans) PackATransposed(a, lda, i0, rows, p0, kc, mr, dst);
        else
        {
            for (int r0 = 0; r0 < rows; r0 += mr)
            {
                // the next panel's rows while this one is transposed
                int next = Math.Min(rows, r0 + 2 * mr) - (r0 + mr);
                if (next > 0) PrefetchRows(a + (nint)(i0 + r0 + mr) * lda + p0, lda, next, kc);
                PackA(a, lda, false, i0 + r0, Math.Min(mr, rows - r0), p0, kc, mr, dst + (nint)(r0 / mr) * mr * kc);
            }
        }
        if (sums == null) return;
        for (int r0 = 0; r0 < rows; r0 += mr)
            AddPanelSums(dst + (nint)(r0 / mr) * mr * kc, kc, mr, Math.Min(mr, rows - r0), sums + r0);
    }

    /// <summary><c>sums[r] += Σ_p panel[p·mr + r]</c> for r &lt; rows: a packed panel's row sums, mr lanes at a time.</summary>
    [SkipLocalsInit]
    private static void AddPanelSums<T>(T* panel, int kc, int mr, int rows, T* sums) where T : unmanaged, INumber<T>
    {
        T* acc = stackalloc T[mr];
        int r = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; r + Vector256<T>.Count <= mr; r += Vector256<T>.Count)
            {
                var s = Vector256<T>.Zero;
                for (int p = 0; p < kc; p++) s += Vector256.Load(panel + (nint)p * mr + r);
                s.Store(acc + r);
            }
        if (Vector128.IsHardwareAccelerated)
            for (; r + Vector128<T>.Count <= mr; r += Vector128<T>.Count)
            {
                var s = Vector128<T>.Zero;
                for (int p = 0; p < kc; p++) s += Vector128.Load(panel + (nint)p * mr + r);
                s.Store(acc + r);
            }
        for (; r < mr; r++)
        {
            T s = T.Zero;
            for (int p = 0; p < kc; p++) s += panel[(nint)p * mr + r];
            acc[r] = s;
        }
        for (r = 0; r < rows; r++) sums[r] += acc[r];
    }

    /// <summary>
    /// Panels of Aᵀ (A's columns [i0, i0 + rows) at depths [p0, p0 + kc)): each depth's values are contiguous in A. A's
    /// rows are read 8 depths at a time across all the panels, so every line fetched is used whole, instead of one
    /// panel's 12 values per row: panel by panel, a weight gradient's dYᵀ (rows 3-4 KiB apart, the same few L1 sets)
    /// was packed at 7-12 GB/s, a quarter of the product's time.
    /// </summary>
    private static void PackATransposed<T>(T* a, int lda, int i0, int rows, int p0, int kc, int mr, T* dst) where T : unmanaged, INumber<T>
    {
        int panels = (rows + mr - 1) / mr;
        for (int g = 0; g < kc; g += 8)
        {
            int ge = Math.Min(kc, g + 8);
            // the next group's rows: each is in a page of its own, where the hardware's streams do not start
            if (ge < kc) PrefetchRows(a + (nint)(p0 + ge) * lda + i0, lda, Math.Min(kc, ge + 8) - ge, rows);
            for (int q = 0; q < panels; q++)
            {
                int r0 = q * mr, n = Math.Min(mr, rows - r0);
                T* panel = dst + (nint)q * mr * kc;
                for (int p = g; p < ge; p++)
                {
                    T* src = a + (nint)(p0 + p) * lda + i0 + r0;
                    T* d = panel + (nint)p * mr;
                    int r = 0;
                    if (Vector256.IsHardwareAccelerated)
                        for (; r + Vector256<T>.Count <= n; r += Vector256<T>.Count) Vector256.Store(Vector256.Load(src + r), d + r);
                    if (Vector128.IsHardwareAccelerated)
                        for (; r + Vector128<T>.Count <= n; r += Vector128<T>.Count) Vector128.Store(Vector128.Load(src + r), d + r);
                    for (; r < n; r++) d[r] = src[r];
                    for (; r < mr; r++) d[r] = T.Zero;
                }
            }
        }
    }

    /// <summary>Whether the packing prefetches the rows it reads next (off only for the profiles' A/B).</summary>
    internal static bool PrefetchPack = true;

    /// <summary>Prefetches <paramref name="count"/> rows of <paramref name="length"/> elements, <paramref name="stride"/> apart, into L1.</summary>
    private static void PrefetchRows<T>(T* first, int stride, int count, int length) where T : unmanaged
    {
        if (!PrefetchPack || !Sse.IsSupported) return;
        for (int r = 0; r < count; r++)
        {
            byte* row = (byte*)(first + (nint)r * stride);
            for (int off = 0; off < length * sizeof(T); off += 64) Sse.Prefetch0(row + off);
        }
    }

    /// <summary>A 4×4 block: row i of <paramref name="src"/> (stride <paramref name="lds"/>) becomes column i of <paramref name="dst"/> (stride <paramref name="ldd"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4x4(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Sse.LoadVector128(src);
        var r1 = Sse.LoadVector128(src + lds);
        var r2 = Sse.LoadVector128(src + 2 * (nint)lds);
        var r3 = Sse.LoadVector128(src + 3 * (nint)lds);
        var t0 = Sse.UnpackLow(r0, r1);
        var t1 = Sse.UnpackHigh(r0, r1);
        var t2 = Sse.UnpackLow(r2, r3);
        var t3 = Sse.UnpackHigh(r2, r3);
        Sse.Store(dst, Sse.MoveLowToHigh(t0, t2));
        Sse.Store(dst + ldd, Sse.MoveHighToLow(t2, t0));
        Sse.Store(dst + 2 * (nint)ldd, Sse.MoveLowToHigh(t1, t3));
        Sse.Store(dst + 3 * (nint)ldd, Sse.MoveHighToLow(t3, t1));
    }

    /// <summary>
    /// Depth [p0, p0 + kc) × columns [j0, j0 + cols) of op(B) into <c>dst[p·nr + j]</c>, columns ≥ <paramref name="cols"/> zero.
    /// op(B)(p, j) is <c>b[p·ldb + j]</c>, or <c>b[j·ldb + p]</c> when transposed.
    /// </summary>
    public static void PackB<T>(T* b, int ldb, bool trans, int p0, int kc, int j0, int cols, int nr, T* dst) where T : unmanaged, INumber<T>
    {
        if (!trans)
        {
            for (int p = 0; p < kc; p++)
            {
                T* src = b + (nint)(p0 + p) * ldb + j0;
                T* d = dst + (nint)p * nr;
                Unsafe.CopyBlockUnaligned(d, src, (uint)(cols * sizeof(T)));
                for (int j = cols; j < nr; j++) d[j] = T.Zero;
            }
            return;
        }
        int done = 0;
        if (typeof(T) == typeof(float) && Avx.IsSupported && nr % 8 == 0)
        {
            // 8 columns × 8 depths at a time: 8 row loads, an in-register transpose, 8 stores.
            int kc8 = kc & ~7;
            for (; done + 8 <= cols; done += 8)
            {
                float* src = (float*)b + (nint)(j0 + done) * ldb + p0;
                float* d = (float*)dst + done;
                for (int p = 0; p < kc8; p += 8) Transpose8x8(src + p, ldb, d + (nint)p * nr, nr);
                for (int j = 0; j < 8; j++)
                    for (int p = kc8; p < kc; p++) d[(nint)p * nr + j] = src[(nint)j * ldb + p];
            }
        }
        for (int j = done; j < cols; j++)
        {
            T* src = b + (nint)(j0 + j) * ldb + p0;
            T* d = dst + j;
            for (int p = 0; p < kc; p++) d[(nint)p * nr] = src[p];
        }
        for (int j = cols; j < nr; j++)
            for (int p = 0; p < kc; p++) dst[(nint)p * nr + j] = T.Zero;
    }

    /// <summary>dst[q·ldd + r] = src[r·lds + q] for r, q in 0..8 (AVX: unpack, shuffle, permute).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * (nint)lds);
        var r3 = Avx.LoadVector256(src + 3 * (nint)lds);
        var r4 = Avx.LoadVector256(src + 4 * (nint)lds);
        var r5 = Avx.LoadVector256(src + 5 * (nint)lds);
        var r6 = Avx.LoadVector256(src + 6 * (nint)lds);
        var r7 = Avx.LoadVector256(src + 7 * (nint)lds);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * (nint)ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * (nint)ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * (nint)ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * (nint)ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * (nint)ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * (nint)ldd, Avx.Permute2x128(u3, u7, 0x31));
    }
}

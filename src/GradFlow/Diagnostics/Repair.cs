using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>One repair attempt: a remedy applied, and the trial before and after it.</summary>
/// <param name="Remedy">The remedy id (null for the initial trial).</param>
/// <param name="Description">What it changed.</param>
/// <param name="Trial">The trial of the config with the remedy applied.</param>
/// <param name="Accepted">Whether the remedy was kept (it improved the verdict or the loss).</param>
public sealed record RepairAttempt(string? Remedy, string Description, TrialResult Trial, bool Accepted);

/// <summary>The outcome of <see cref="Repairer.Repair"/>.</summary>
/// <param name="Initial">The trial of the original config.</param>
/// <param name="Attempts">Every remedy tried, in order.</param>
/// <param name="Final">The trial of the final config.</param>
/// <param name="Cost">Steps of all trials over the steps of one full training run of the config.</param>
public sealed record RepairResult(TrialResult Initial, IReadOnlyList<RepairAttempt> Attempts, TrialResult Final, double Cost)
{
    /// <summary>The repaired config (accepted by <c>gradflow train --config</c>).</summary>
    public TrainingConfig Config => Final.Config;

    /// <summary>Whether the final trial is healthy.</summary>
    public bool Healthy => Final.Diagnosis.Healthy;
}

/// <summary>
/// Automatic repair: short monitored trials (a fixed number of steps, not the full budget) on the
/// same seeds. The first change is the standard recipe (<see cref="Remedies.Recipe"/>); then, after each trial, the untried remedy for the highest-scoring cause over all problems is
/// applied — the suggestion on the faulty layers first, then wider ones — and kept when the trial improves (fewer
/// or less severe problems, or a lower loss at equal verdict). Stops when healthy or when the budget
/// of trials is spent. When a change limited to some layers made the run healthy, one more trial
/// applies it to every hidden layer and keeps it if the loss is lower.
/// </summary>
public static class Repairer
{
    /// <summary>
    /// Repairs <paramref name="config"/> with trials of <paramref name="trialSteps"/> steps, at most <paramref name="maxAttempts"/> remedies;
    /// each trial's monitor samples every <paramref name="every"/> steps, kept as given (a user's explicit choice: <c>--monitor-every</c>), or
    /// by default every twentieth of a trial (more often in a trial too short for the loss-trend rules, <see cref="Trials.SampleEvery"/>).
    /// </summary>
    /// <remarks>
    /// With <paramref name="jobs"/> threads, or several processes in <paramref name="world"/> (every process calls it with the same
    /// arguments), the candidate remedies that the search would try one after another while each is rejected run at once, one per
    /// worker (jobs × processes), and their trials are then taken in that order: the first kept one ends the batch, and the trials
    /// after it are dropped (speculation that did not pay: they count in no cost, and the next batch starts from the kept config).
    /// So the attempts, the result and the progress are those of one worker, for any count. Under mpirun the trials come back to
    /// every process as <see cref="TrialWire"/> JSON, and every process takes the same decisions.
    /// </remarks>
    public static RepairResult Repair(TrainingConfig config, int trialSteps = 200, int maxAttempts = 4, DataBundle? data = null,
        DiagnosisSettings? settings = null, Action<RepairAttempt>? progress = null, CancellationToken cancellation = default,
        int jobs = 1, ICommunicator? world = null, int? every = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(trialSteps, 1);
        if (every is { } e) ArgumentOutOfRangeException.ThrowIfLessThan(e, 1, nameof(every));
        var trainerForBudget = new Trainer(config, data);
        data ??= trainerForBudget.Data;
        long fullRun = trainerForBudget.StepBudget;
        ArgumentOutOfRangeException.ThrowIfLessThan(jobs, 1);
        world ??= SingleProcessCommunicator.Instance;
        int sampleEvery = every ?? Math.Max(1, trialSteps / 20);
        var attempts = new List<RepairAttempt>();
        TrialResult current = null!;
        var tried = new HashSet<string>();
        long steps = 0;
        // trials of candidate configs at once, on the threads or processes (the same results on every process)
        TrialResult[] RunTrials(TrainingConfig[] candidates)
        {
            TrialResult One(int i) => Trials.Run(candidates[i], trialSteps, sampleEvery, data, settings: settings, cancellation: cancellation, exactEvery: every is not null);
            return world.Size == 1 ? IndependentRuns.Run(candidates.Length, One, jobs: jobs, cancellation: cancellation)
                : [.. IndependentRuns.RunEverywhere(world, candidates.Length, i => TrialWire.Serialize(One(i)), jobs, cancellation).Select(TrialWire.Parse)];
        }
        // a candidate's trial recorded as an attempt, and kept when keep(trial, current) says so
        bool Record(string remedy, string description, TrialResult trial, Func<TrialResult, TrialResult, bool> keep)
        {
            steps += trial.StepsSpent;
            bool kept = keep(trial, current);
            var attempt = new RepairAttempt(remedy, description, trial, kept);
            attempts.Add(attempt);
            progress?.Invoke(attempt);
            if (kept) current = trial;
            return kept;
        }
        void Attempt(string remedy, string description, TrainingConfig candidate, Func<TrialResult, TrialResult, bool> keep) =>
            Record(remedy, description, RunTrials([candidate])[0], keep);
        var initial = RunTrials([config])[0];
        steps = initial.StepsSpent;
        current = initial;
        // First the standard recipe (every common remedy at once): on the generated catalogue's calibration half it made
        // more broken runs end healthy than the single remedy aimed at the top cause, at the cost of one trial.
        // It is kept unless its trial did worse on the loss: the recipe carries what is known to train, and a slow
        // starter's trial may still be at chance (a worse verdict at an equal or lower loss does not refute it).
        if (Remedies.Recipe(initial.Diagnosis, config) is { } recipe && !cancellation.IsCancellationRequested)
        {
            tried.Add(Key(recipe.Id, config));
            Attempt(recipe.Id, recipe.Description, Remedies.Apply(recipe.Id, config),
                (t, c) => Better(t, c) || double.IsFinite(t.FinalLoss) && !(t.FinalLoss > c.FinalLoss));
        }
        int workers = jobs * world.Size;
        while (!current.Diagnosis.Healthy && attempts.Count < maxAttempts && !cancellation.IsCancellationRequested)
        {
            // the remedies for the highest-scoring cause over all problems (ties: the more severe problem first), in the order
            // the search tries them while each is rejected; a remedy is tried once per config, so a learning rate can be
            // lowered again after another change; one that does not apply or changes nothing is passed over
            var batch = new List<(RemedySuggestion Remedy, TrainingConfig Candidate, List<string> Keys)>();
            var keys = new List<string>();
            var seen = new HashSet<string>(tried);
            foreach (var remedy in current.Diagnosis.Problems.SelectMany((p, i) => p.Remedies.Select(r => (r, i)))
                .OrderByDescending(t => t.r.Score).ThenBy(t => t.i).Select(t => t.r))
            {
                if (batch.Count == Math.Min(workers, maxAttempts - attempts.Count)) break;
                string key = Key(remedy.Id, current.Config);
                if (!seen.Add(key)) continue;
                keys.Add(key);
                TrainingConfig candidate;
                try
                {
                    candidate = Remedies.Apply(remedy.Id, current.Config);
                }
                catch (FormatException)
                {
                    continue;
                }
                if (!Remedies.Changes(current.Config, candidate)) continue;
                batch.Add((remedy, candidate, keys));
                keys = [];
            }
            if (batch.Count == 0)
            {
                tried.UnionWith(keys);
                break;
            }
            var trials = RunTrials([.. batch.Select(b => b.Candidate)]);
            bool kept = false;
            for (int b = 0; b < batch.Count && !kept; b++)
            {
                tried.UnionWith(batch[b].Keys);
                kept = Record(batch[b].Remedy.Id, batch[b].Remedy.Description, trials[b], Improves);
            }
            if (!kept) tried.UnionWith(keys); // passed over after the last candidate, as one worker would have before stopping
        }
        // Healthy after a change limited to the faulty layers: one more trial with the same change on every
        // hidden layer, kept if it stays healthy and reaches a lower loss (the smallest change may not be the best).
        if (current.Diagnosis.Healthy && !cancellation.IsCancellationRequested &&
            attempts.LastOrDefault(a => a.Accepted && a.Remedy is { } r && r.Contains('@', StringComparison.Ordinal)) is { } partial)
        {
            string wide = partial.Remedy![..partial.Remedy!.IndexOf('@', StringComparison.Ordinal)];
            var candidate = Remedies.Apply(wide, current.Config);
            if (!tried.Contains(Key(wide, current.Config)) && Remedies.Changes(current.Config, candidate))
                Attempt(wide, $"the same change on every hidden layer ({partial.Description})", candidate,
                    (t, c) => t.Diagnosis.Healthy && double.IsFinite(t.FinalLoss) && t.FinalLoss < c.FinalLoss);
        }
        return new RepairResult(initial, attempts, current, fullRun == 0 ? double.NaN : (double)steps / fullRun);
    }

    private static string Key(string remedy, TrainingConfig config) => remedy + "\n" + config.ToJson();

    /// <summary>
    /// Whether the search keeps the change that gave trial <paramref name="a"/> over the current <paramref name="b"/>: <see cref="Better"/>,
    /// unless <paramref name="a"/> is still not healthy and its loss rose by more than <see cref="WorseLoss"/> (a transformer's lower
    /// learning rate dropped an oscillating verdict beside a stall and was kept at a 20 % higher loss, above chance, with test accuracy
    /// 22.6 % → 9.7 %).
    /// </summary>
    public static bool Improves(TrialResult a, TrialResult b) =>
        Better(a, b) && (a.Diagnosis.Healthy || !(a.FinalLoss > WorseLoss * b.FinalLoss));

    /// <summary>The loss ratio above which a change that leaves the run broken is not kept (<see cref="Improves"/>).</summary>
    public const double WorseLoss = 1.1;

    /// <summary>Whether trial <paramref name="a"/> is better than <paramref name="b"/>: healthier verdict first, then lower loss.</summary>
    public static bool Better(TrialResult a, TrialResult b)
    {
        double Badness(TrialResult t) => t.Diagnosis.Problems.Sum(p => 1 + Math.Min(p.Severity, 10));
        double ba = Badness(a), bb = Badness(b);
        if (Math.Abs(ba - bb) > 0.25) return ba < bb;
        double la = a.FinalLoss, lb = b.FinalLoss;
        return double.IsFinite(la) && (!double.IsFinite(lb) || la < lb);
    }
}

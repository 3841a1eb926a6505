using System.CommandLine;
using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow catalogue</c>: builds a catalogue labelled by the outcomes of full training runs.</summary>
internal static class CatalogueCommand
{
    // the options of 'catalogue'; one line each
    public static readonly Option<string?> Out = Opt.String("out", "the catalogue file to write", "FILE");
    public static readonly Option<ulong?> Seed = Opt.ULong("seed", "seed of the draw (default 1)", "S");
    public static readonly Option<int?> Count = Opt.Int("count", "MLP and recurrent configurations to draw (default 340)");
    public static readonly Option<int?> ConvCount = Opt.Int("conv-count", "conv nets to draw beside them, on Fashion-MNIST images (default 0)");
    public static readonly Option<string?> Cache = Opt.String("cache", "keep each measured outcome as it completes, so an interrupted build resumes", "FILE.jsonl");
    public static readonly Option<string?> Relabel = Opt.String("relabel", "re-label FILE in place from its stored outcomes, without training", "FILE");

    public static Command Declare()
    {
        var command = new Verb("catalogue", "generate a catalogue labelled by the outcomes of full training runs",
            "Draws N configurations reproducibly from the catalogue grammar with seed S: MLPs and recurrent networks of many depths, widths, " +
            "activations, initialisations, normalisations and residual forms (and with --conv-count M, M conv nets and ResNets from a stream of their own), with SGD, Adam, AdamW, RMSprop or Adagrad over wide ranges of " +
            "learning rate, batch size and clipping, on six tasks with fixed budgets. Trains each for its full budget with the monitor on and labels " +
            "it by what happened: healthy (at least 0.9 of the way from chance to the best run of the same task, optimiser family and budget), " +
            "broken (non-finite, loss at or above chance, or below 0.6 of the way) with the mechanism the monitor saw, or ambiguous (dropped and " +
            "counted). Entries alternate between a calibration half and a held-out half. Exit code: 0 when done, 1 error, 2 usage.")
        { Out, Seed, Count, ConvCount, Cache, Relabel };
        command.Validators.Add(r =>
        {
            if (!r.Has(Relabel) && !r.Has(Out)) r.AddError("--out FILE is required (or --relabel FILE).");
            else if (r.Valid(Count) is int count and < 1) r.AddError($"--count must be at least 1, got {count}.");
            else if (r.Valid(ConvCount) is int conv and < 0) r.AddError($"--conv-count must be 0 or more, got {conv}.");
        });
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        if (o.GetValue(Relabel) is { } path)
        {
            AtomicFile.WriteAllText(path, GeneratedCatalogue.Relabel(File.ReadAllText(path), path));
            var relabelled = Catalogue.Load(path);
            stdout.WriteLine(Summary(relabelled));
            return 0;
        }
        string outPath = o.GetValue(Out)!;
        ulong seed = o.GetValue(Seed) ?? 1;
        int conv = o.GetValue(ConvCount) ?? 0;
        int count = o.GetValue(Count) ?? 340, total = count + conv;
        int done = 0;
        string json = GeneratedCatalogue.Build(seed, count, o.GetValue(Cache), (name, r) =>
        {
            done++;
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{done,4}/{total} {name,-34} acc {r.TestAccuracy,7:P1} loss {r.FinalTrainLoss,9:G3} (chance {r.ChanceLoss:G3}) ratio {r.GradientRatio,8:E1} dead {r.DeadFraction,5:F2} sat {r.Saturation,5:F2} upd {r.UpdateRatio,8:G2} {r.Seconds,5:F1}s"));
        }, convCount: conv);
        AtomicFile.WriteAllText(outPath, json);
        stdout.WriteLine(Summary(Catalogue.Load(outPath)));
        return 0;
    }

    private static string Summary(Catalogue c)
    {
        var kinds = c.Entries.Where(e => !e.Healthy).GroupBy(e => Catalogue.KindName(e.Expect!.Value)).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key} {g.Count()}");
        return string.Create(CultureInfo.InvariantCulture,
            $"{c.Entries.Count} entries ({c.Entries.Count(e => e.Healthy)} healthy; broken: {string.Join(", ", kinds)}), {c.Dropped} dropped; calibration {c.Entries.Count(e => e.Split == "calibration")}, held-out {c.Entries.Count(e => e.Split == "held-out")}");
    }
}

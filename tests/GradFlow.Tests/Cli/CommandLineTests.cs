using System.Diagnostics;
using GradFlow.Cli;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Cli;

/// <summary>The System.CommandLine surface: generated help, suggestions, response files, usage errors, completion.</summary>
public class CommandLineTests
{
    private static readonly string[] Verbs = ["demo", "train", "diagnose", "repair", "report", "serve", "evaluate", "sweep", "catalogue", "generate", "grads", "export", "predict", "completion"];

    [Fact]
    public void Help_ListsEveryVerbWithItsSummary()
    {
        var (code, output, _) = CliRunner.Run("--help");
        Assert.Equal(0, code);
        foreach (var verb in Verbs) Assert.Matches($@"\n  {verb}( <[A-Za-z]+>)?\s+\S", output);
        Assert.Contains("3 problem found", output);
    }

    [Fact]
    public void TrainHelp_ListsTypedOptionsAndTheDetails()
    {
        var (code, output, err) = CliRunner.Run("train", "--help");
        Assert.True(code == 0, err);
        Assert.Contains("gradflow train [options]", output);
        Assert.Matches(@"--optimizer <sgd\|adam\|adamw\|rmsprop\|adagrad>\s+the optimiser", output);
        Assert.Matches(@"--epochs <N>\s+epochs \(default 10\)", output);
        Assert.Contains("--force", output);
        Assert.Contains("Details:\n  Trains a model", output);
    }

    [Fact]
    public void MisspeltOption_IsAUsageErrorWithASuggestion()
    {
        var (code, output, err) = CliRunner.Run("train", "--epoch", "2");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("gradflow train: Unrecognized command or argument '--epoch'", err);
        Assert.Contains("'--epoch' was not matched. Did you mean '--epochs'?", err);
        Assert.DoesNotContain("'2' was not matched", err); // a stray value is reported, with no far-fetched suggestion
    }

    [Fact]
    public void MisspeltVerb_SuggestsTheVerb()
    {
        var (code, _, err) = CliRunner.Run("diagnoze", "--preflight");
        Assert.Equal(2, code);
        Assert.Contains("Did you mean 'diagnose'?", err);
    }

    [Theory]
    [InlineData("--epochs", "ten", "--epochs 'ten' is not an integer.")]
    [InlineData("--lr", "fast", "--lr 'fast' is not a finite number.")]
    [InlineData("--lr", "NaN", "--lr 'NaN' is not a finite number.")]
    [InlineData("--seed", "-1", "--seed '-1' is not a non-negative integer.")]
    [InlineData("--optimizer", "adamx", "--optimizer 'adamx' is not one of sgd, adam, adamw, rmsprop, adagrad.")]
    public void BadValue_IsAUsageErrorNamingOptionAndValueOnce(string option, string value, string message)
    {
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 2-4-2", "--data", "spirals", option, value);
        Assert.Equal(2, code);
        Assert.Contains("gradflow train: " + message, err);
        Assert.Single(err.Split('\n'), l => l.Contains(message, StringComparison.Ordinal));
        Assert.DoesNotContain("gradflow train: gradflow", err);
    }

    [Theory]
    [InlineData(new[] { "train", "--force" }, "--force goes with --out")]
    [InlineData(new[] { "train", "--serve" }, "--serve shows the run directory")]
    [InlineData(new[] { "train", "--port", "7000" }, "--port and --host go with --serve")]
    [InlineData(new[] { "train", "--out", "a", "--resume", "b" }, "give either --out or --resume, not both")]
    [InlineData(new[] { "diagnose", "--preflight", "--steps", "5" }, "--preflight and --steps exclude each other")]
    [InlineData(new[] { "diagnose", "--preflight", "--out", "d" }, "--out and --every go with a trial")]
    [InlineData(new[] { "diagnose", "--force" }, "--force goes with --out")]
    [InlineData(new[] { "train", "--out", "/etc/hostname" }, "--out /etc/hostname is a file; it takes a directory")]
    [InlineData(new[] { "diagnose", "--out", "/etc/hostname" }, "--out /etc/hostname is a file; it takes a directory")]
    [InlineData(new[] { "repair", "--out", "/etc/hostname" }, "--out /etc/hostname is a file; it takes a directory")]
    [InlineData(new[] { "train", "--model", "mlp 2-4-2", "--model-file", "/etc/hostname", "--data", "spirals" }, "give either --model or --model-file, not both")]
    [InlineData(new[] { "demo", "--lr", "0.1" }, "--lr goes with --model or --model-file")]
    [InlineData(new[] { "grads", "--batch", "b", "--out", "o" }, "--model or --model-file is required")]
    [InlineData(new[] { "export", "run" }, "'--onnx' is required")]
    [InlineData(new[] { "evaluate", "--catalogue", "c.json", "--split", "half" }, "--split must be calibration or held-out, got 'half'")]
    public void CrossOptionRule_IsAUsageError(string[] args, string message)
    {
        var (code, output, err) = CliRunner.Run(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains($"gradflow {args[0]}: ", err);
        Assert.Contains(message, err);
    }

    [Fact]
    public void ResponseFile_SuppliesOptions()
    {
        var dir = Directory.CreateTempSubdirectory("gradflow-rsp-").FullName;
        try
        {
            var rsp = Path.Combine(dir, "train.rsp");
            File.WriteAllText(rsp, "--model \"mlp 2-8-2\"\n--data spirals\n--epochs 1\n--train-limit 64\n--test-limit 32\n--threads 1\n--json\n");
            var (code, output, err) = CliRunner.Run("train", "@" + rsp, "--batch-size", "16");
            Assert.True(code == 0, err);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, lines.Length); // one epoch (--epochs 1 from the file) and the summary: --json came from the file
            Assert.Contains("\"steps\":4", lines[1]); // 64 examples in batches of 16 (the command line) = 4 steps
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void PlainOutput_HasNoTerminalEscapes()
    {
        var (code, output, err) = CliRunner.Run("diagnose", "--preflight", "--model", "mlp 8-8x3-2", "--data", "teacher", "--threads", "1");
        Assert.True(code is 0 or 3, err);
        Assert.DoesNotContain('\u001b', output + err);
        Assert.Matches(@"\n\s+4\s+\(output\)", output); // a layer row: index, activation, figures on one line
    }

    [Fact]
    public void CompletionBash_CompletesOptionsAndEnumValuesThroughGradflow()
    {
        var (code, script, _) = CliRunner.Run("completion", "bash");
        Assert.Equal(0, code);
        var dir = Directory.CreateTempSubdirectory("gradflow-completion-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "gradflow.bash"), script);
            string dll = Path.Combine(AppContext.BaseDirectory, "GradFlow.Cli.dll");
            // gradflow as a shell function (as if installed), the script sourced, then completion at the end of two lines
            File.WriteAllText(Path.Combine(dir, "run.sh"), $$"""
                gradflow() { dotnet '{{dll}}' "$@"; }
                source '{{Path.Combine(dir, "gradflow.bash")}}'
                complete -p gradflow
                ask() { COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -r -a COMP_WORDS <<< "$COMP_LINE"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _gradflow_complete; echo "${COMPREPLY[*]}"; }
                ask 'gradflow train --optim'
                ask 'gradflow train --optimizer ad'
                ask 'gradflow diag'
                """);
            var psi = new ProcessStartInfo("bash", [Path.Combine(dir, "run.sh")]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var bash = Process.Start(psi)!;
            string output = bash.StandardOutput.ReadToEnd(), err = bash.StandardError.ReadToEnd();
            bash.WaitForExit();
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 4, output + err);
            Assert.Contains("-F _gradflow_complete gradflow", lines[0]);
            Assert.Equal("--optimizer", lines[1]);
            Assert.Equal(["adagrad", "adam", "adamw"], lines[2].Split(' ').Order(StringComparer.Ordinal));
            Assert.Equal("diagnose", lines[3]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

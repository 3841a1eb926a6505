using Spectre.Console;
using Spectre.Console.Rendering;

namespace GradFlow.Cli;

/// <summary>
/// Spectre.Console over the CLI's writers: colours, borders and live progress when the writer is the
/// process's own stdout or stderr and that is a terminal; otherwise plain text (no ANSI, simple borders,
/// a fixed width so that lines do not wrap), which tests and logs can parse.
/// </summary>
internal static class Terminal
{
    /// <summary>Width of plain output: wide enough that no table of the CLI wraps.</summary>
    private const int PlainWidth = 200;

    /// <summary>Whether <paramref name="w"/> is this process's stdout or stderr and a terminal.</summary>
    public static bool IsTerminal(TextWriter w) =>
        ReferenceEquals(w, Console.Out) ? !Console.IsOutputRedirected
        : ReferenceEquals(w, Console.Error) && !Console.IsErrorRedirected;

    /// <summary>A Spectre console writing to <paramref name="w"/>: ANSI in a terminal, plain otherwise.</summary>
    public static IAnsiConsole For(TextWriter w)
    {
        bool tty = IsTerminal(w);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = tty ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = tty ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = tty ? InteractionSupport.Detect : InteractionSupport.No,
            Out = new AnsiConsoleOutput(w),
        });
        if (!tty) console.Profile.Width = PlainWidth;
        return console;
    }

    /// <summary>Writes <paramref name="renderable"/> to <paramref name="w"/>.</summary>
    public static void Write(TextWriter w, IRenderable renderable) => Write(w, For(w), renderable);

    /// <summary>Writes <paramref name="renderable"/> with <paramref name="console"/> (made by <see cref="For"/> for <paramref name="w"/>); plain text without trailing blanks.</summary>
    public static void Write(TextWriter w, IAnsiConsole console, IRenderable renderable)
    {
        if (IsTerminal(w))
            console.Write(renderable);
        else
        {
            var text = new StringWriter();
            var plain = For(text);
            plain.Write(renderable);
            var lines = text.ToString().Split('\n').Select(l => l.TrimEnd()).SkipWhile(l => l.Length == 0).ToList();
            while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
            foreach (var line in lines) w.WriteLine(line);
        }
        w.Flush();
    }

    /// <summary>A table with GradFlow's style: rounded borders in a terminal, a header rule only in plain text; numeric columns right-aligned.</summary>
    public static Table Table(bool tty, params (string Header, bool Right)[] columns)
    {
        var table = new Table { Border = tty ? TableBorder.Rounded : TableBorder.Simple };
        foreach (var (header, right) in columns)
            table.AddColumn(new TableColumn(tty ? $"[bold]{Markup.Escape(header)}[/]" : Markup.Escape(header)) { Alignment = right ? Justify.Right : Justify.Left });
        return table;
    }
}

using System.CommandLine;

namespace GradFlow.Cli;

/// <summary>
/// <c>gradflow completion bash</c>: a bash completion script. It asks gradflow itself for the completions
/// at the cursor through System.CommandLine's <c>[suggest:POSITION]</c> directive, so verbs, options and
/// option values (enum members) complete from the same declarations that parse them.
/// </summary>
internal static class CompletionCommand
{
    public static readonly Argument<string> Shell = new Argument<string>("SHELL") { Description = "the shell (bash)" }.AcceptOnlyFromAmong("bash");

    public static Command Declare()
    {
        var command = new Verb("completion", "print a shell completion script (gradflow completion bash)",
            "Prints a shell completion script: 'source <(gradflow completion bash)', or save it under /etc/bash_completion.d/gradflow.") { Shell };
        command.SetAction(r => r.Out().Write(BashScript));
        return command;
    }

    /// <summary>
    /// The script: the command line up to the cursor, without the command's own name, goes to
    /// 'gradflow [suggest:N] LINE' (N its length), whose answer (one completion a line) is filtered by the
    /// word being completed.
    /// </summary>
    internal const string BashScript = """
        # bash completion for gradflow: source <(gradflow completion bash)
        _gradflow_complete()
        {
            local line="${COMP_LINE:0:COMP_POINT}"
            local rest="${line#"${COMP_WORDS[0]}"}"
            local IFS=$'\n'
            COMPREPLY=( $(compgen -W "$("${COMP_WORDS[0]}" "[suggest:${#rest}]" "$rest" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}") )
        }
        complete -o default -F _gradflow_complete gradflow

        """;
}

using GradFlow.Cli;
using GradFlow.Training;

int code = CliApp.Run(args, Console.Out, Console.Error);
// under mpirun, a process that fails ends the job, so that the others do not wait for it in a collective forever
if (code != 0 && Communicators.UnderMpirun && Communicators.FromEnvironment() is { Size: > 1 } world) world.Abort(code);
return code;

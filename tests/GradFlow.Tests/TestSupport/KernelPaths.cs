namespace GradFlow.Tests.TestSupport;

/// <summary>
/// The trait of a kernel test that runs every instruction-set path itself (<c>foreach (var isa in KernelIsa.All)</c>, the path
/// passed to the kernel): the child processes of <see cref="Kernels.KernelFallbackTests"/>, which switch the wider instruction
/// sets off for the tests that can only reach a narrower path through the run-time dispatch, leave such a test out, since this
/// process has already run it on each of those paths.
/// </summary>
public static class KernelPaths
{
    public const string Trait = "KernelPaths";
    public const string Forced = "forced";
}

using System.CommandLine;
using Cortensor.Portal.Cli.Commands.Migrate;
using Cortensor.Portal.Cli.Commands.RouterSim;

namespace Cortensor.Portal.Cli;

/// <summary>Composes the command tree. <c>--version</c> and <c>--help</c> come from System.CommandLine.</summary>
internal static class CliApplication
{
    /// <summary>Builds the root command.</summary>
    /// <param name="environment">Reads an environment variable; tests pass their own instead of changing the process's.</param>
    public static RootCommand BuildRootCommand(Func<string, string?>? environment = null) => new("Cortensor Portal command line: operate and test a Cortensor Portal.")
    {
        new RouterSimCommandDefinition(),
        new MigrateCommandDefinition(environment ?? Environment.GetEnvironmentVariable),
    };
}

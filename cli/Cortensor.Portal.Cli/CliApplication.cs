using System.CommandLine;
using Cortensor.Portal.Cli.Commands.Migrate;
using Cortensor.Portal.Cli.Commands.RouterSim;

namespace Cortensor.Portal.Cli;

/// <summary>Composes the command tree. <c>--version</c> and <c>--help</c> come from System.CommandLine.</summary>
internal static class CliApplication
{
    public static RootCommand BuildRootCommand() => new("Cortensor Portal command line: operate and test a Cortensor Portal.")
    {
        new RouterSimCommandDefinition(),
        new MigrateCommandDefinition(),
    };
}

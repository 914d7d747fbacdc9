using Garnet;

namespace Cortensor.Portal.Testing.GarnetHost;

/// <summary>
/// Garnet in a process of its own, for the tests that kill, freeze (SIGSTOP) and restart the server. The arguments are
/// Garnet's own (see <c>TestRedisServers.GarnetArguments</c>). An explicit, internal entry point: the test projects
/// reference this program, and a top-level <c>Program</c> would clash with the Portal host's.
/// </summary>
internal static class GarnetHostProgram
{
    private static void Main(string[] args)
    {
        using var server = new GarnetServer(args);
        server.Start();
        Thread.Sleep(Timeout.Infinite);
    }
}

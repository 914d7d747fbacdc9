namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>
/// When <c>PG_CONNECTION</c> is not set, starts one throwaway PostgreSQL server for this test process
/// (<see cref="PostgresServerProcess"/>: the machine's PostgreSQL binaries, a free loopback port, trust auth, no
/// fsync) and stops it when the process exits. So <c>dotnet test</c> needs no service started by hand; CI still
/// starts its own server and sets the variable. Tests that stop and restart a server (the outage tests) start
/// their own <see cref="PostgresServerProcess"/> instead.
/// </summary>
internal static class LocalPostgresServer
{
    private static readonly Lazy<string> Server = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string ConnectionString => Server.Value;

    private static string Start()
    {
        var server = PostgresServerProcess.StartNew();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Dispose();
        return server.ConnectionString;
    }
}

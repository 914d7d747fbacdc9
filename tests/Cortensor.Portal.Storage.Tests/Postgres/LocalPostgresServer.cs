using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>
/// When <c>PG_CONNECTION</c> is not set, starts one throwaway PostgreSQL server for this test process from the
/// machine's PostgreSQL binaries (Debian's postgresql-15), on a free loopback port with trust auth and no fsync,
/// and stops it when the process exits. So <c>dotnet test</c> needs no service started by hand; CI still starts
/// its own server and sets the variable.
/// </summary>
internal static class LocalPostgresServer
{
    private static readonly string[] BinDirectories = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"];
    private static readonly Lazy<string> Server = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string ConnectionString => Server.Value;

    private static string Start()
    {
        var bin = BinDirectories.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            ?? throw new InvalidOperationException(
                "PostgreSQL tests need a server: set PG_CONNECTION, or install PostgreSQL (apt-get install postgresql-15) so the tests can start a throwaway one.");

        var root = Path.Combine(Path.GetTempPath(), "cportal-pg-" + Guid.NewGuid().ToString("N")[..8]);
        var data = Path.Combine(root, "data");
        var socket = Path.Combine(root, "sock");
        Directory.CreateDirectory(data);
        Directory.CreateDirectory(socket);
        var asRoot = Environment.UserName == "root";
        if (asRoot)
        {
            // initdb refuses to run as root: the server runs as the postgres user.
            Run("chown", ["-R", "postgres", root], asRoot: false);
            Run("chmod", ["755", root], asRoot: false);
        }

        Run(Path.Combine(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], asRoot);
        var port = FreePort();
        Run(Path.Combine(bin, "pg_ctl"), ["-D", data, "-l", Path.Combine(data, "server.log"), "-w", "-t", "30", "-o",
            $"-c listen_addresses=127.0.0.1 -p {port} -k {socket} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start"], asRoot);

        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Run(Path.Combine(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], asRoot);
                Directory.Delete(root, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
            }
        };

        return $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres";
    }

    private static void Run(string file, IReadOnlyList<string> args, bool asRoot)
    {
        var info = asRoot ? new ProcessStartInfo("runuser") : new ProcessStartInfo(file);
        if (asRoot)
        {
            foreach (var a in new[] { "-u", "postgres", "--", file })
            {
                info.ArgumentList.Add(a);
            }
        }

        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {output.Result}{error.Result}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

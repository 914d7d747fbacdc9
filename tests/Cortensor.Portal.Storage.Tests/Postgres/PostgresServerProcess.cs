using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>
/// One throwaway PostgreSQL server made from the machine's PostgreSQL binaries (Debian's postgresql-15/16/17):
/// <c>initdb</c> into a fresh temp folder with trust auth, listening on 127.0.0.1 only, on a free port. It can be
/// stopped (<c>pg_ctl stop -m immediate</c>, like a crash) and started again on the same port and data, which is
/// what the outage tests need. Disposing stops it and deletes the folder. When the process runs as root, the
/// server runs as the <c>postgres</c> user (initdb refuses root).
/// </summary>
/// <remarks>Also compiled into <c>benchmarks/Cortensor.Portal.Benchmarks</c> (linked file).</remarks>
internal sealed class PostgresServerProcess : IDisposable
{
    private static readonly string[] BinDirectories = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"];

    private readonly string _bin;
    private readonly string _root;
    private readonly string _data;
    private readonly string _options;
    private readonly bool _asRoot;
    private readonly Lock _lock = new();
    private bool _running;
    private bool _disposed;

    private PostgresServerProcess(string bin, bool durable)
    {
        _bin = bin;
        _root = Path.Combine(Path.GetTempPath(), "cportal-pg-" + Guid.NewGuid().ToString("N")[..8]);
        _data = Path.Combine(_root, "data");
        var socket = Path.Combine(_root, "sock");
        Directory.CreateDirectory(_data);
        Directory.CreateDirectory(socket);
        _asRoot = Environment.UserName == "root";
        if (_asRoot)
        {
            Run("chown", ["-R", "postgres", _root], asRoot: false);
            Run("chmod", ["755", _root], asRoot: false);
        }

        Run(Path.Combine(bin, "initdb"), ["-D", _data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], _asRoot);
        Port = FreePort();

        // Tests trade durability for speed; the benchmark measures with PostgreSQL's durable defaults.
        var speed = durable ? string.Empty : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
        _options = $"-c listen_addresses=127.0.0.1 -p {Port} -k {socket} -c max_connections=200{speed}";
    }

    /// <summary>The loopback port the server listens on (the same after a restart).</summary>
    public int Port { get; }

    /// <summary>The superuser <c>postgres</c> over TCP on 127.0.0.1 (trust auth, no password).</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres";

    /// <summary>The server log file.</summary>
    public string LogFile => Path.Combine(_data, "server.log");

    /// <summary>Whether the machine has PostgreSQL binaries to start a server from.</summary>
    public static bool IsAvailable => FindBin() is not null;

    /// <summary>Creates the data folder and starts the server.</summary>
    /// <param name="durable">False (tests): fsync, synchronous_commit and full_page_writes off. True: PostgreSQL's defaults.</param>
    public static PostgresServerProcess StartNew(bool durable = false)
    {
        var bin = FindBin() ?? throw new InvalidOperationException(
            "PostgreSQL tests need a server: set PG_CONNECTION, or install PostgreSQL (apt-get install postgresql-15) so a throwaway one can be started.");
        var server = new PostgresServerProcess(bin, durable);
        try
        {
            server.Start();
        }
        catch
        {
            server.Dispose();
            throw;
        }

        return server;
    }

    /// <summary>Starts the server (again) on the same port and data folder; waits until it accepts connections.</summary>
    public void Start()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Run(Path.Combine(_bin, "pg_ctl"), ["-D", _data, "-l", LogFile, "-w", "-t", "60", "-o", _options, "start"], _asRoot);
            _running = true;
        }
    }

    /// <summary><c>pg_ctl stop -m immediate</c>: every connection is cut at once, like a crash (recovery on the next start).</summary>
    public void StopImmediately()
    {
        lock (_lock)
        {
            if (_running)
            {
                Run(Path.Combine(_bin, "pg_ctl"), ["-D", _data, "-m", "immediate", "-w", "stop"], _asRoot);
                _running = false;
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            try
            {
                if (_running)
                {
                    Run(Path.Combine(_bin, "pg_ctl"), ["-D", _data, "-m", "immediate", "-w", "stop"], _asRoot);
                    _running = false;
                }

                Directory.Delete(_root, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                // A leftover temp folder is harmless.
            }
        }
    }

    private static string? FindBin() => BinDirectories.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")));

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
        if (!process.WaitForExit(90_000) || process.ExitCode != 0)
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

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Cortensor.Portal.Testing.Redis;

/// <summary>
/// One throwaway Redis-protocol server in its own process, on a free loopback port, with no persistence and its
/// working folder under the temp folder: the machine's <c>redis-server</c>, or Garnet hosted by
/// <c>Cortensor.Portal.Testing.GarnetHost</c> (see <see cref="TestRedisServers.Choose()"/>). It can be killed (like a
/// crash), frozen (SIGSTOP, like a hung server) and started again on the same port, which is what the outage tests
/// need. Disposing stops it and deletes the folder.
/// </summary>
/// <remarks>
/// The server runs under a small <c>sh</c> watchdog that kills it once this test process is gone. The test host may
/// be ended without running exit handlers, and a server must not outlive it.
/// </remarks>
public sealed class RedisServerProcess : IDisposable
{
    /// <summary>$1: the process to watch; $2: the server's log; the rest: the server and its arguments. Prints the server's pid first.</summary>
    private const string Watchdog = """
        watch=$1; log=$2; shift 2
        "$@" >>"$log" 2>&1 & server=$!
        echo $server
        while kill -0 "$watch" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
        kill -9 "$server" 2>/dev/null
        """;

    private readonly IReadOnlyList<string> _command;
    private readonly string _root;
    private readonly string _log;
    private readonly Lock _lock = new();
    private Process? _watchdog;
    private int _serverPid;
    private bool _disposed;

    private RedisServerProcess(TestRedisServerKind kind)
    {
        Kind = kind;
        _root = Path.Combine(Path.GetTempPath(), "cportal-redis-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_root);
        _log = Path.Combine(_root, "server.log");
        Port = TestRedisServers.FreePort();
        _command = kind switch
        {
            TestRedisServerKind.RedisServer =>
            [
                TestRedisServers.FindRedisServer() ?? throw new InvalidOperationException("There is no redis-server on the PATH."),
                "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", _root,
            ],
            _ => [DotnetHost(), "exec", GarnetHostAssembly(), .. TestRedisServers.GarnetArguments(Port)],
        };
    }

    /// <summary>Which server this is.</summary>
    public TestRedisServerKind Kind { get; }

    /// <summary>The loopback port (the same after a restart).</summary>
    public int Port { get; }

    /// <summary>A StackExchange.Redis configuration string for this server, with admin commands (INFO) allowed.</summary>
    public string ConnectionString => $"127.0.0.1:{Port},allowAdmin=true";

    /// <summary>What runs, for messages: e.g. "Garnet 2.2.12 (own process) on 127.0.0.1:PORT".</summary>
    public string Description => Kind == TestRedisServerKind.Garnet
        ? $"Garnet {TestRedisServers.GarnetVersion} (own process, Lua in transaction mode) on 127.0.0.1:{Port}"
        : $"{_command[0]} on 127.0.0.1:{Port}";

    /// <summary>Starts the server <see cref="TestRedisServers.Choose()"/> picks.</summary>
    public static RedisServerProcess StartNew() => StartNew(TestRedisServers.Choose());

    /// <summary>Starts a server of the given kind.</summary>
    public static RedisServerProcess StartNew(TestRedisServerKind kind)
    {
        var server = new RedisServerProcess(kind);
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

    /// <summary>Starts the server (again) on the same port; returns when it answers PING.</summary>
    public void Start()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_serverPid != 0)
            {
                return;
            }

            var info = new ProcessStartInfo("/bin/sh")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = _root,
            };
            foreach (var arg in new[] { "-c", Watchdog, "sh", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), _log }.Concat(_command))
            {
                info.ArgumentList.Add(arg);
            }

            _watchdog = Process.Start(info) ?? throw new InvalidOperationException("The server did not start.");
            _serverPid = int.Parse(_watchdog.StandardOutput.ReadLine() ?? "0", CultureInfo.InvariantCulture);
            _ = _watchdog.StandardOutput.ReadToEndAsync();
            _ = _watchdog.StandardError.ReadToEndAsync();
            WaitUntilReady();
            if (Kind == TestRedisServerKind.Garnet)
            {
                GarnetWarmUp.Run(Port);
            }
        }
    }

    /// <summary>Kills the server (every connection drops at once, all data is lost).</summary>
    public void Stop()
    {
        lock (_lock)
        {
            if (_serverPid == 0)
            {
                return;
            }

            Signal("-KILL");
            WaitForExit(_serverPid);
            _serverPid = 0;
            try
            {
                _watchdog?.Kill(entireProcessTree: true); // rather than wait for its next check
            }
            catch (InvalidOperationException)
            {
                // It has exited already.
            }

            _watchdog?.Dispose();
            _watchdog = null;
        }
    }

    /// <summary>Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a hung server.</summary>
    public void Pause() => Signal("-STOP");

    /// <summary>Lets a paused server run again (SIGCONT).</summary>
    public void Resume() => Signal("-CONT");

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            Stop();
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A leftover temp folder is harmless.
        }
    }

    /// <summary>The GarnetHost program, copied beside the test assembly by its project reference.</summary>
    private static string GarnetHostAssembly()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Cortensor.Portal.Testing.GarnetHost.dll");
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"{path} is missing: reference tests/Cortensor.Portal.Testing.Redis from the test project.");
    }

    /// <summary>The dotnet host running these tests (so the Garnet process uses the same runtime).</summary>
    private static string DotnetHost()
    {
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
        {
            return current;
        }

        // Set by the dotnet CLI for the processes it starts (dotnet test among them).
        var cli = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return !string.IsNullOrEmpty(cli) && File.Exists(cli)
            ? cli
            : TestRedisServers.FindOnPath("dotnet", Environment.GetEnvironmentVariable("PATH")) ?? "dotnet";
    }

    private void Signal(string signal)
    {
        int pid;
        lock (_lock)
        {
            pid = _serverPid;
        }

        if (pid == 0)
        {
            return;
        }

        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { signal, pid.ToString(CultureInfo.InvariantCulture) } })!;
        kill.WaitForExit(5_000);
    }

    private static void WaitForExit(int pid)
    {
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < TimeSpan.FromSeconds(10) && File.Exists($"/proc/{pid}/stat") && !IsZombie(pid))
        {
            Thread.Sleep(5);
        }
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            // /proc/<pid>/stat: "pid (name) state ..."; a killed child its parent has not reaped yet is Z.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return true;
        }
    }

    private void WaitUntilReady()
    {
        var stopwatch = Stopwatch.StartNew();
        Exception? last = null;
        // Garnet is a .NET program: it takes longer to start than redis-server, more so on a busy machine.
        while (stopwatch.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_watchdog!.HasExited)
            {
                throw new InvalidOperationException($"{Description} exited: {(File.Exists(_log) ? File.ReadAllText(_log) : "")}");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                using var stream = client.GetStream();
                stream.ReadTimeout = 2_000;
                stream.Write("PING\r\n"u8);
                var buffer = new byte[16];
                var read = stream.Read(buffer);
                if (Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (SocketException ex)
            {
                last = ex;
            }
            catch (IOException ex)
            {
                last = ex;
            }

            Thread.Sleep(10);
        }

        throw new InvalidOperationException($"{Description} did not answer PING.", last);
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>
/// One throwaway Redis server made from the machine's <c>redis-server</c> (Debian's redis-server package), on a free
/// loopback port, with no persistence and its working folder under the temp folder. It can be killed (like a crash),
/// frozen (SIGSTOP, like a hung server) and started again on the same port, which is what the outage tests need.
/// Disposing stops it and deletes the folder.
/// </summary>
/// <remarks>
/// The server runs under a small <c>sh</c> watchdog that kills it once this test process is gone. The test host may
/// be ended without running exit handlers, and a server must not outlive it.
/// </remarks>
internal sealed class RedisServerProcess : IDisposable
{
    private static readonly string[] Candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"];

    /// <summary>$1: the process to watch; the rest: redis-server and its arguments. Prints the server's pid first.</summary>
    private const string Watchdog = """
        watch=$1; shift
        "$@" & server=$!
        echo $server
        while kill -0 "$watch" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
        kill -9 "$server" 2>/dev/null
        """;

    private readonly string _binary;
    private readonly string _root;
    private readonly Lock _lock = new();
    private Process? _watchdog;
    private int _serverPid;
    private bool _disposed;

    private RedisServerProcess(string binary)
    {
        _binary = binary;
        _root = Path.Combine(Path.GetTempPath(), "cportal-redis-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_root);
        Port = FreePort();
    }

    /// <summary>The loopback port (the same after a restart).</summary>
    public int Port { get; }

    /// <summary>A StackExchange.Redis configuration string for this server, with admin commands (INFO) allowed.</summary>
    public string ConnectionString => $"127.0.0.1:{Port},allowAdmin=true";

    /// <summary>Whether the machine has a <c>redis-server</c> to start.</summary>
    public static bool IsAvailable => FindBinary() is not null;

    public static RedisServerProcess StartNew()
    {
        var binary = FindBinary() ?? throw new InvalidOperationException(
            "Redis tests need a server: set REDIS_CONNECTION, or install Redis (apt-get install redis-server) so a throwaway one can be started.");
        var server = new RedisServerProcess(binary);
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
            foreach (var arg in new[]
            {
                "-c", Watchdog, "sh", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), _binary,
                "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", _root, "--logfile", Path.Combine(_root, "redis.log"),
            })
            {
                info.ArgumentList.Add(arg);
            }

            _watchdog = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
            _serverPid = int.Parse(_watchdog.StandardOutput.ReadLine() ?? "0", CultureInfo.InvariantCulture);
            _ = _watchdog.StandardOutput.ReadToEndAsync();
            _ = _watchdog.StandardError.ReadToEndAsync();
            WaitUntilReady();
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
        while (stopwatch.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (_watchdog!.HasExited)
            {
                var log = Path.Combine(_root, "redis.log");
                throw new InvalidOperationException($"redis-server exited: {(File.Exists(log) ? File.ReadAllText(log) : "")}");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                using var stream = client.GetStream();
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

        throw new InvalidOperationException($"redis-server on port {Port} did not answer PING.", last);
    }

    private static string? FindBinary() => Candidates.FirstOrDefault(File.Exists);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

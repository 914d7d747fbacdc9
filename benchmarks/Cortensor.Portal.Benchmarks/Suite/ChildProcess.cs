using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>
/// A server of the suite in its own process: this program's <c>serve</c> command (see <see cref="ServeCommand"/>), or
/// any other program (the Portkey gateway under node). Output is drained to a log; CPU time and resident memory are
/// read from the process. Stopped on dispose: standard input closed, then killed by its id if still running.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly StreamWriter _log;

    private ChildProcess(string name, Process process, string logFile)
    {
        Name = name;
        _process = process;
        LogFile = logFile;
        _log = new StreamWriter(logFile) { AutoFlush = true };
    }

    public string Name { get; }

    public string LogFile { get; }

    public int Id => _process.Id;

    /// <summary>What followed <c>READY</c> (base URL, and for a gateway its API key).</summary>
    public string[] Ready { get; private set; } = [];

    public Uri BaseUrl => new(Ready[0]);

    public TimeSpan Cpu
    {
        get
        {
            _process.Refresh();
            return _process.HasExited ? TimeSpan.Zero : _process.TotalProcessorTime;
        }
    }

    /// <summary>Resident set size (VmRSS) in bytes.</summary>
    public long ResidentBytes
    {
        get
        {
            _process.Refresh();
            return _process.HasExited ? 0 : _process.WorkingSet64;
        }
    }

    /// <summary>Peak resident set size (VmHWM) in bytes, from <c>/proc</c>.</summary>
    public long PeakResidentBytes
    {
        get
        {
            try
            {
                var line = File.ReadLines($"/proc/{Id}/status").FirstOrDefault(static l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
                return line is null ? 0 : long.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
            catch (IOException)
            {
                return 0;
            }
        }
    }

    /// <summary>Starts <c>serve &lt;arguments&gt;</c> of this program and waits for its READY line.</summary>
    public static async Task<ChildProcess> ServeAsync(string name, string logFolder, IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var start = SelfStartInfo();
        start.ArgumentList.Add("serve");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        var child = Start(name, logFolder, start, watchReady: true);
        try
        {
            var line = await child._ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            child.Ready = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return child;
        }
        catch
        {
            child.Dispose();
            throw;
        }
    }

    /// <summary>Starts any program; ready when something accepts connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<ChildProcess> StartAsync(string name, string logFolder, ProcessStartInfo start, int port)
    {
        ArgumentNullException.ThrowIfNull(start);
        var child = Start(name, logFolder, start, watchReady: false);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (child._process.HasExited)
            {
                var log = File.Exists(child.LogFile) ? await File.ReadAllTextAsync(child.LogFile) : "";
                child.Dispose();
                throw new InvalidOperationException($"{name} exited with code {child._process.ExitCode}: {log[Math.Max(0, log.Length - 2000)..]}");
            }

            try
            {
                using var socket = new TcpClient();
                await socket.ConnectAsync(IPAddress.Loopback, port);
                child.Ready = [$"http://127.0.0.1:{port}/"];
                return child;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try
                {
                    _process.StandardInput.Close();
                }
                catch (IOException)
                {
                    // Already gone.
                }

                if (!_process.WaitForExit(TimeSpan.FromSeconds(5)))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(TimeSpan.FromSeconds(5));
                }
            }
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        finally
        {
            _process.Dispose();
            lock (_log)
            {
                _log.Dispose();
            }
        }
    }

    private static ChildProcess Start(string name, string logFolder, ProcessStartInfo start, bool watchReady)
    {
        start.UseShellExecute = false;
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var child = new ChildProcess(name, process, Path.Combine(logFolder, name + ".log"));
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                child._ready.TrySetException(new InvalidOperationException($"{name} closed its output before READY; see {child.LogFile}."));
                return;
            }

            if (watchReady && e.Data.StartsWith("READY ", StringComparison.Ordinal))
            {
                child._ready.TrySetResult(e.Data[6..]);
            }

            child.Write(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                child.Write(e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private void Write(string line)
    {
        lock (_log)
        {
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // Output after dispose.
            }
        }
    }

    /// <summary>This program again: the apphost, or <c>dotnet &lt;dll&gt;</c> when run through the muxer.</summary>
    private static ProcessStartInfo SelfStartInfo()
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("No process path.");
        if (Path.GetFileNameWithoutExtension(path).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            var start = new ProcessStartInfo(path);
            start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
            return start;
        }

        return new ProcessStartInfo(path);
    }
}

/// <summary>Raises this process's open-file limit (children inherit it): 10,000 open streams need ~20,000 sockets in the gateway.</summary>
internal static class FileLimit
{
    private const int RlimitNofile = 7;

    /// <summary>The soft limit now (what this process and its children may open).</summary>
    public static long Current()
    {
        if (!OperatingSystem.IsLinux())
        {
            return long.MaxValue;
        }

        var limit = default(RLimit);
        return NativeMethods.getrlimit(RlimitNofile, ref limit) == 0 ? (long)Math.Min(limit.Current, long.MaxValue) : 1024;
    }

    public static string Raise(ulong wanted)
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux: left as is";
        }

        var limit = default(RLimit);
        if (NativeMethods.getrlimit(RlimitNofile, ref limit) != 0)
        {
            return "getrlimit failed";
        }

        var before = $"{limit.Current}/{limit.Max}";
        if (limit.Current >= wanted)
        {
            return $"{before} (enough)";
        }

        var raised = new RLimit { Current = wanted, Max = Math.Max(wanted, limit.Max) };
        if (NativeMethods.setrlimit(RlimitNofile, ref raised) == 0)
        {
            return $"raised from {before} to {wanted}/{raised.Max}";
        }

        var errno = Marshal.GetLastPInvokeError();
        raised = new RLimit { Current = limit.Max, Max = limit.Max };
        _ = NativeMethods.setrlimit(RlimitNofile, ref raised);
        return $"could not raise {before} to {wanted} (errno {errno}: no CAP_SYS_RESOURCE in this container); soft limit now {limit.Max}";
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    private static class NativeMethods
    {
#pragma warning disable SYSLIB1054 // blittable one-liners.
        [DllImport("libc", SetLastError = true)]
        public static extern int getrlimit(int resource, ref RLimit limit);

        [DllImport("libc", SetLastError = true)]
        public static extern int setrlimit(int resource, ref RLimit limit);
#pragma warning restore SYSLIB1054
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Cortensor.Portal.Template.Tests;

/// <summary>A generated portal running as its own process on a free loopback port, with its output captured.</summary>
internal sealed class RunningPortal : IAsyncDisposable
{
    private const string KeyLinePrefix = "Cortensor Portal development API key: ";

    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private RunningPortal(Process process, Uri baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    /// <summary>Completes with the development key if the portal prints one.</summary>
    public TaskCompletionSource<string> Key { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Starts the portal with <paramref name="environment"/> on top of this process's variables.</summary>
    public static RunningPortal Start(string dll, string workingDirectory, IReadOnlyDictionary<string, string> environment)
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add(url);
        var portal = new RunningPortal(Process.Start(info)!, new Uri(url));
        portal._process.OutputDataReceived += (_, e) => portal.OnLine(e.Data);
        portal._process.ErrorDataReceived += (_, e) => portal.OnLine(e.Data);
        portal._process.BeginOutputReadLine();
        portal._process.BeginErrorReadLine();
        return portal;
    }

    /// <summary>SIGTERM, as a service manager would send; returns the exit code.</summary>
    public async Task<int> StopGracefullyAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    /// <summary>Waits for the portal to end by itself (for example when it refuses to start); returns the exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }

        if (line.StartsWith(KeyLinePrefix, StringComparison.Ordinal))
        {
            Key.TrySetResult(line[KeyLinePrefix.Length..].Trim());
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>A simulated Cortensor router on its own small Kestrel server (tests, the embedded demo host, the CLI).</summary>
/// <remarks>
/// The server reads no configuration files or environment variables: it listens only on the URL it is given
/// (loopback with a free port by default) and logs nothing unless run in the foreground with <see cref="RunAsync"/>.
/// </remarks>
public sealed class RouterSimulatorServer : IAsyncDisposable
{
    /// <summary>The default URL of <see cref="StartAsync"/>: loopback, any free port.</summary>
    public const string DefaultUrl = "http://127.0.0.1:0";

    private readonly WebApplication _app;
    private int _stopped;

    private RouterSimulatorServer(WebApplication app, RouterSimulatorOptions options, RouterSimulatorStats stats, Uri baseUrl)
    {
        _app = app;
        Options = options;
        Stats = stats;
        BaseUrl = baseUrl;
    }

    /// <summary>The bound address, for example <c>http://127.0.0.1:53127/</c>.</summary>
    public Uri BaseUrl { get; }

    /// <summary>The options the simulator reads on every request; change them to flip quirks.</summary>
    public RouterSimulatorOptions Options { get; }

    /// <summary>What this simulator saw: counters, the last request and the recent ones.</summary>
    public RouterSimulatorStats Stats { get; }

    /// <summary>Starts a simulator listening on <paramref name="url"/> and returns once it accepts connections.</summary>
    /// <param name="options">The simulator's behaviour.</param>
    /// <param name="url">One http URL; port 0 picks a free port (use an IP address, not <c>localhost</c>, with port 0).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<RouterSimulatorServer> StartAsync(
        RouterSimulatorOptions options,
        string url = DefaultUrl,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(url);

        var stats = new RouterSimulatorStats();
        var app = Build(options, stats, url, foreground: false);
        try
        {
            await app.StartAsync(cancellationToken);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? url;
            return new RouterSimulatorServer(app, options, stats, new Uri(address.EndsWith('/') ? address : address + "/"));
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs a simulator in the foreground (CLI) until <paramref name="cancellationToken"/> fires, logging to the console.</summary>
    public static async Task RunAsync(
        RouterSimulatorOptions options,
        string url = "http://127.0.0.1:5010",
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(url);

        var app = Build(options, new RouterSimulatorStats(), url, foreground: true);
        await using (app)
        {
            await app.StartAsync(cancellationToken);
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Normal end of a foreground run.
            }

            await app.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Stops listening; open streams get up to two seconds to finish.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            await _app.StopAsync(cancellationToken);
        }
    }

    /// <summary>Stops the server and releases it.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _app.DisposeAsync();
    }

    private static WebApplication Build(RouterSimulatorOptions options, RouterSimulatorStats stats, string url, bool foreground)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(RouterSimulatorServer).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = Environments.Production,
        });

        // No appsettings, environment variables or Kestrel endpoint sections: bind only to what was asked.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection();
        builder.WebHost.UseUrls(url);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.Logging.ClearProviders();
        if (foreground)
        {
            builder.Logging.AddSimpleConsole(console => console.SingleLine = true);
            builder.Logging.SetMinimumLevel(LogLevel.Information);
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        }

        var app = builder.Build();
        app.MapRouterSimulator(options, stats);
        return app;
    }
}

using System.Collections.Concurrent;
using System.Security.Cryptography;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Fleet.Simulator;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Hosting;

/// <summary>
/// Starts one router simulator per router marked <see cref="RouterOptions.Simulated"/>, each on its own
/// loopback port with a random bearer key made for this process. Requests still go through the real
/// Cortensor router client over HTTP, so the embedded default exercises the same path as production.
/// </summary>
internal sealed partial class SimulatedRouterHost(
    IOptionsMonitor<FleetOptions> options,
    ILogger<SimulatedRouterHost> logger) : IHostedService, ISimulatedRouterDirectory, IAsyncDisposable, IDisposable
{
    private readonly ConcurrentDictionary<string, (RouterSimulatorServer Server, string ApiKey)> _servers = new(StringComparer.OrdinalIgnoreCase);

    public bool TryGetEndpoint(string routerId, out Uri baseUrl, out string apiKey)
    {
        if (_servers.TryGetValue(routerId, out var entry))
        {
            baseUrl = entry.Server.BaseUrl;
            apiKey = entry.ApiKey;
            return true;
        }

        baseUrl = null!;
        apiKey = null!;
        return false;
    }

    public bool TryGetServer(string routerId, out RouterSimulatorServer server)
    {
        var found = _servers.TryGetValue(routerId, out var entry);
        server = entry.Server;
        return found;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var fleet = options.CurrentValue;
        foreach (var (routerId, router) in fleet.Routers)
        {
            if (!router.Simulated || !router.Enabled)
            {
                continue;
            }

            var apiKey = "sim_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var simulatorOptions = (router.Simulator ?? new SimulatedRouterSettings()).ToSimulatorOptions(apiKey);
            var server = await RouterSimulatorServer.StartAsync(simulatorOptions, "http://127.0.0.1:0", cancellationToken);
            _servers[routerId] = (server, apiKey);
            Log.SimulatorStarted(logger, routerId, server.BaseUrl);
        }

        // Canned answers look like success; whoever reads the start-up log must see that they are not real.
        if (!_servers.IsEmpty)
        {
            Log.RoutersSimulated(logger, _servers.Count, string.Join(", ", _servers.Keys.Order(StringComparer.OrdinalIgnoreCase)));
        }
        else if (fleet.UseSimulatedRouters)
        {
            Log.SimulatedRoutersSwitchIgnored(logger);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var (_, entry) in _servers)
        {
            await entry.Server.DisposeAsync();
        }

        _servers.Clear();
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None);

    // Containers disposed synchronously still stop the simulators (normally StopAsync already has).
    public void Dispose() => StopAsync(CancellationToken.None).GetAwaiter().GetResult();

    private static partial class Log
    {
        [LoggerMessage(EventId = 4200, Level = LogLevel.Information, Message = "Simulated router {RouterId} listening on {BaseUrl}")]
        public static partial void SimulatorStarted(ILogger logger, string routerId, Uri baseUrl);

        [LoggerMessage(EventId = 4201, EventName = "RoutersSimulated", Level = LogLevel.Warning,
            Message = "ROUTERS ARE SIMULATED: {Count} router(s) ({RouterIds}) are the built-in simulator, which answers every request with canned text. For development and tests only; configure real routers under Cortensor:Fleet:Routers (and leave Cortensor:Fleet:UseSimulatedRouters unset) in production")]
        public static partial void RoutersSimulated(ILogger logger, int count, string routerIds);

        [LoggerMessage(EventId = 4202, EventName = "SimulatedRoutersSwitchIgnored", Level = LogLevel.Information,
            Message = "Cortensor:Fleet:UseSimulatedRouters is set, but Cortensor:Fleet configures routers: the configured routers are served")]
        public static partial void SimulatedRoutersSwitchIgnored(ILogger logger);
    }
}

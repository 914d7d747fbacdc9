using Cortensor.Portal.Gateway.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>Writes the failed-authentication aggregates every <see cref="FailedAuthenticationOptions.ReportInterval"/>, and once more on stop.</summary>
internal sealed class FailedAuthenticationReporter(
    FailedAuthenticationGuard guard,
    IOptionsMonitor<CortensorGatewayOptions> options,
    TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(options.CurrentValue.FailedAuthentication.ReportInterval, time, stoppingToken);
                guard.Report();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping: the last report is written by StopAsync
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        guard.Report();
    }
}

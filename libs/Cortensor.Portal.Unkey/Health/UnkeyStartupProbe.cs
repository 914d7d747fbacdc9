using Microsoft.Extensions.Hosting;

namespace Cortensor.Portal.Unkey.Health;

/// <summary>
/// Runs <see cref="UnkeyRootKeyProbe"/> once when the host starts, in the background, so a wrong or mis-scoped root key
/// is logged (event 8330, or 8332 naming a missing read permission) before the first customer request; start-up does not wait
/// for Unkey, which may be briefly unreachable.
/// </summary>
internal sealed class UnkeyStartupProbe(UnkeyRootKeyProbe probe) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                await probe.CheckAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                // The host stopped first.
            }
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _stopping.CancelAsync();

    public void Dispose() => _stopping.Dispose();
}

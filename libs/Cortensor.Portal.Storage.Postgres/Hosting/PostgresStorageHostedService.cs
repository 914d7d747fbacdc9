using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Postgres.Hosting;

/// <summary>
/// Migrates (or checks) the schema in <see cref="StartingAsync"/>, before any hosted service's
/// <c>StartAsync</c> runs, then maintains partitions once at start and every <see cref="MaintenanceInterval"/>.
/// </summary>
/// <remarks>
/// A start-up failure (unreachable server, bad credentials, missing database, schema newer than the code) stops
/// the host with a <see cref="PostgresStorageException"/>. A failing periodic maintenance run is logged and
/// retried at the next tick; the default partition keeps inserts working meanwhile.
/// </remarks>
internal sealed partial class PostgresStorageHostedService : IHostedLifecycleService, IAsyncDisposable, IDisposable
{
    /// <summary>How often partition maintenance runs after start-up.</summary>
    public static readonly TimeSpan MaintenanceInterval = TimeSpan.FromDays(1);

    private readonly PostgresMigrator _migrator;
    private readonly PostgresPartitionMaintenance _maintenance;
    private readonly PostgresStorageOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private ITimer? _timer;
    private Task _running = Task.CompletedTask;
    private bool _disposed;

    public PostgresStorageHostedService(
        PostgresMigrator migrator,
        PostgresPartitionMaintenance maintenance,
        IOptions<PostgresStorageOptions> options,
        TimeProvider timeProvider,
        ILogger<PostgresStorageHostedService>? logger = null)
    {
        _migrator = migrator;
        _maintenance = maintenance;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        if (_options.ApplyMigrationsOnStart)
        {
            var result = await _migrator.MigrateAsync(cancellationToken);
            Log.SchemaReady(_logger, _migrator.Schema, result.CurrentVersion, result.Applied.Count);
        }
        else
        {
            await _migrator.EnsureCurrentAsync(cancellationToken);
            Log.SchemaReady(_logger, _migrator.Schema, _migrator.TargetVersion, 0);
        }

        await _maintenance.MaintainPartitionsAsync(cancellationToken);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _timer ??= _timeProvider.CreateTimer(static state => ((PostgresStorageHostedService)state!).OnTick(), this, MaintenanceInterval, MaintenanceInterval);
        }

        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        Task running;
        lock (_gate)
        {
            StopTimer();
            running = _running;
            if (!_disposed)
            {
                _stopping.Cancel();
            }
        }

        await running.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            StopTimer();
            _stopping.Cancel();
        }

        // Not disposed: a maintenance run still in flight may read its token; it has nothing to release.
    }

    /// <summary>Runs one maintenance pass unless the previous one is still running. For tests and the timer.</summary>
    internal Task RunMaintenanceOnceAsync()
    {
        lock (_gate)
        {
            if (_running.IsCompleted && !_disposed && !_stopping.IsCancellationRequested)
            {
                _running = RunMaintenanceCoreAsync(_stopping.Token);
            }

            return _running;
        }
    }

    private void OnTick() => _ = RunMaintenanceOnceAsync();

    private void StopTimer()
    {
        lock (_gate)
        {
            _timer?.Dispose();
            _timer = null;
        }
    }

    private async Task RunMaintenanceCoreAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            var result = await _maintenance.MaintainPartitionsAsync(cancellationToken);
            Log.MaintenanceCompleted(_logger, _migrator.Schema, result.Created.Count, result.Dropped.Count);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.MaintenanceFailed(_logger, ex, _migrator.Schema);
        }
    }

    /// <summary>EventIds 7200-7299.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7200, EventName = "SchemaReady", Level = LogLevel.Information,
            Message = "Postgres schema {Schema} is at version {Version} ({Applied} migrations applied now)")]
        public static partial void SchemaReady(ILogger logger, string schema, int version, int applied);

        [LoggerMessage(EventId = 7201, EventName = "MaintenanceCompleted", Level = LogLevel.Debug,
            Message = "Partition maintenance of schema {Schema}: {Created} created, {Dropped} dropped")]
        public static partial void MaintenanceCompleted(ILogger logger, string schema, int created, int dropped);

        [LoggerMessage(EventId = 7202, EventName = "MaintenanceFailed", Level = LogLevel.Warning,
            Message = "Partition maintenance of schema {Schema} failed; retrying at the next run")]
        public static partial void MaintenanceFailed(ILogger logger, Exception exception, string schema);
    }
}

using Cortensor.Portal.Redis.Configuration;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>
/// What one test needs against a Redis server: a fresh key prefix (so tests can share a server), options, and
/// connections that it disposes at the end. Each <see cref="Connect"/> makes a separate multiplexer, as two
/// replicas would have.
/// </summary>
internal sealed class RedisTestScope : IDisposable
{
    private readonly List<ConnectionMultiplexer> _connections = [];
    private readonly Lock _lock = new();

    public RedisTestScope(string? connectionString = null, TimeSpan? operationTimeout = null)
    {
        ConnectionString = connectionString ?? LocalRedisServer.ConnectionString;
        Options = new RedisOptions
        {
            ConnectionString = ConnectionString,
            KeyPrefix = "t" + Guid.NewGuid().ToString("N")[..12] + ":",
            OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(2), // generous: CI machines are slow
        };
    }

    public string ConnectionString { get; }

    public RedisOptions Options { get; }

    public IOptions<RedisOptions> OptionsWrapper => Microsoft.Extensions.Options.Options.Create(Options);

    /// <summary>A new multiplexer with the Portal's settings (abortConnect off, fail-fast backlog).</summary>
    public ConnectionMultiplexer Connect(Action<ConfigurationOptions>? tune = null)
    {
        var configuration = CortensorRedisConnection.CreateConfiguration(Options);
        configuration.ConnectTimeout = 2000;
        tune?.Invoke(configuration);
        var connection = ConnectionMultiplexer.Connect(configuration);
        lock (_lock)
        {
            _connections.Add(connection);
        }

        return connection;
    }

    /// <summary>A plain connection for inspecting the server (SCAN, INFO), with admin commands allowed.</summary>
    public ConnectionMultiplexer ConnectAdmin() => Connect(c => c.AllowAdmin = true);

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var connection in _connections)
            {
                connection.Dispose();
            }

            _connections.Clear();
        }
    }
}

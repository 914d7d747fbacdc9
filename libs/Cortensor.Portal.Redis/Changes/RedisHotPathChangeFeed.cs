using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Changes;

/// <summary>
/// An <see cref="IHotPathChangeFeed"/> shared by every replica through Redis pub/sub on the channel
/// <c>{KeyPrefix}hotpath:changes</c>. The payload is <c>Kind:Id</c> (ids only, never secrets).
/// </summary>
/// <remarks>
/// <para>
/// <see cref="PublishAsync"/> calls this replica's subscribers before it returns, then publishes; notices from other
/// replicas are handed to this replica's subscribers as they arrive. A replica's own notice comes back through Redis
/// and is delivered a second time: subscribers are idempotent cache evictions.
/// </para>
/// <para>
/// Notices published while this replica was cut off from Redis are lost, so whenever the subscription connection
/// is (re)established, <see cref="HotPathChange.Everything"/> is delivered locally. Publishing while Redis is
/// unreachable still reaches local subscribers; the failure is logged, not thrown.
/// </para>
/// </remarks>
public sealed partial class RedisHotPathChangeFeed : IHotPathChangeFeed, IDisposable
{
    /// <summary>The channel name after <see cref="RedisOptions.KeyPrefix"/>.</summary>
    public const string ChannelName = "hotpath:changes";

    private readonly IConnectionMultiplexer _redis;
    private readonly ILogger<RedisHotPathChangeFeed> _logger;
    private readonly TimeSpan _timeout;
    private readonly RedisChannel _channel;
    private readonly InProcessHotPathChangeFeed _local = new();
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private int _disposed;

    /// <summary>Subscribes to the channel (in the background: Redis may be down; the client resubscribes on reconnect).</summary>
    /// <param name="redis">The shared connection.</param>
    /// <param name="options">Key prefix and operation timeout.</param>
    /// <param name="logger">Logs publish and subscribe failures.</param>
    public RedisHotPathChangeFeed(IConnectionMultiplexer redis, IOptions<RedisOptions> options, ILogger<RedisHotPathChangeFeed> logger)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _redis = redis;
        _logger = logger;
        _timeout = options.Value.OperationTimeout;
        _channel = RedisChannel.Literal(options.Value.KeyPrefix + ChannelName);
        _onMessage = OnMessage;
        _redis.ConnectionRestored += OnConnectionRestored;
        Subscription = SubscribeAsync();
    }

    /// <summary>Completes when the first SUBSCRIBE was answered (or failed and was logged); for tests and start-up probes.</summary>
    public Task Subscription { get; }

    /// <summary>The channel notices travel on.</summary>
    public RedisChannel Channel => _channel;

    /// <summary>Calls this replica's subscribers, then publishes the notice to the other replicas.</summary>
    /// <param name="change">The notice.</param>
    /// <param name="cancellationToken">Stops waiting for Redis; local subscribers have been called already.</param>
    /// <exception cref="AggregateException">A local subscriber threw (the notice was still published).</exception>
    public async ValueTask PublishAsync(HotPathChange change, CancellationToken cancellationToken = default)
    {
        AggregateException? localFailure = null;
        try
        {
            _local.Deliver(change);
        }
        catch (AggregateException ex)
        {
            localFailure = ex;
        }

        try
        {
            await RedisCalls.WithTimeout(_redis.GetSubscriber().PublishAsync(_channel, Format(change)), _timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.PublishFailed(_logger, change.Kind, change.Id, ex);
        }

        if (localFailure is not null)
        {
            throw localFailure;
        }
    }

    /// <inheritdoc/>
    public IDisposable Subscribe(Action<HotPathChange> handler) => _local.Subscribe(handler);

    /// <summary>Unsubscribes from the channel; the connection itself belongs to the caller.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _redis.ConnectionRestored -= OnConnectionRestored;
        try
        {
            _redis.GetSubscriber().Unsubscribe(_channel, _onMessage, CommandFlags.FireAndForget);
        }
        catch (RedisException)
        {
            // The connection is going away anyway.
        }
    }

    internal static string Format(HotPathChange change) => change.Kind + ":" + change.Id;

    internal static bool TryParse(string? payload, out HotPathChange change)
    {
        change = default;
        var colon = payload?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (colon <= 0
            || !Enum.TryParse<HotPathChangeKind>(payload.AsSpan(0, colon), ignoreCase: false, out var kind)
            || !Enum.IsDefined(kind))
        {
            return false;
        }

        var id = payload![(colon + 1)..];
        change = new HotPathChange(kind, id.Length == 0 ? null : id);
        return true;
    }

    private async Task SubscribeAsync()
    {
        try
        {
            // The client remembers the handler and subscribes again after every reconnect.
            await _redis.GetSubscriber().SubscribeAsync(_channel, _onMessage).ConfigureAwait(false);
        }
        catch (RedisException ex)
        {
            Log.SubscribeFailed(_logger, _channel.ToString(), ex);
        }
    }

    private void OnMessage(RedisChannel channel, RedisValue message)
    {
        if (!TryParse(message, out var change))
        {
            Log.MalformedNotice(_logger, _channel.ToString());
            return;
        }

        DeliverLocally(change);
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        // With RESP3 notices arrive on the interactive connection; with RESP2 on a dedicated one.
        var carriesNotices = e.ConnectionType == ConnectionType.Subscription
            || (e.ConnectionType == ConnectionType.Interactive && IsResp3(e));
        if (!carriesNotices || Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        Log.ConnectionRestored(_logger, e.EndPoint?.ToString());
        DeliverLocally(HotPathChange.Everything);
    }

    private bool IsResp3(ConnectionFailedEventArgs e)
    {
        try
        {
            return e.EndPoint is not null && _redis.GetServer(e.EndPoint).Protocol == RedisProtocol.Resp3;
        }
        catch (Exception ex) when (ex is RedisException or ArgumentException or NotSupportedException)
        {
            return false;
        }
    }

    private void DeliverLocally(HotPathChange change)
    {
        try
        {
            _local.Deliver(change);
        }
        catch (AggregateException ex)
        {
            Log.SubscriberFailed(_logger, change.Kind, change.Id, ex);
        }
    }
}

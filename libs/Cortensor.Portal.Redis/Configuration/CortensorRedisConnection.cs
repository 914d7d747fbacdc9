using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Configuration;

/// <summary>Builds the StackExchange.Redis settings the Portal's Redis components expect.</summary>
public static class CortensorRedisConnection
{
    /// <summary>
    /// Parses <see cref="RedisOptions.ConnectionString"/> and forces the settings the hot path relies on:
    /// <see cref="ConfigurationOptions.AbortOnConnectFail"/> off (the multiplexer is created while Redis is down and
    /// keeps reconnecting) and <see cref="BacklogPolicy.FailFast"/> (a command issued while disconnected fails at once
    /// rather than waiting in a queue, so the rate limiter falls back without delay). Reconnects are tried every
    /// 500 ms (<see cref="LinearRetry"/>) rather than with the default exponential backoff, so the shared limits come
    /// back about a second after Redis does.
    /// </summary>
    /// <param name="options">The Redis settings.</param>
    /// <returns>Settings for <see cref="ConnectionMultiplexer.Connect(ConfigurationOptions, TextWriter?)"/>.</returns>
    public static ConfigurationOptions CreateConfiguration(RedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = ConfigurationOptions.Parse(options.ConnectionString);
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ReconnectRetryPolicy = new LinearRetry(500);
        return configuration;
    }

    /// <summary>
    /// Connects with <see cref="CreateConfiguration"/>. Returns while Redis is still unreachable (the multiplexer
    /// reconnects in the background); commands fail fast until it is reachable.
    /// </summary>
    /// <param name="options">The Redis settings.</param>
    /// <returns>The connected (or still connecting) multiplexer. The caller disposes it.</returns>
    public static Task<ConnectionMultiplexer> ConnectAsync(RedisOptions options)
        => ConnectionMultiplexer.ConnectAsync(CreateConfiguration(options));
}

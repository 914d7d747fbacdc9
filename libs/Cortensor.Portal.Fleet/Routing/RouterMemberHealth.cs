using System.Collections.Concurrent;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Routing;

/// <summary>
/// What the gateway learned from real calls about each (router, session) member of a pool. Today one thing: a member
/// whose router answered 404 (the session is unknown to it, or a proxy blocks the route) is left out of selection
/// for <see cref="FleetOptions.UnknownSessionCooldownSeconds"/>, so requests stop going there and fleet readiness
/// shows it.
/// </summary>
public interface IRouterMemberHealth
{
    /// <summary>Marks the target's (router, session) member unhealthy: its router does not know the session.</summary>
    void ReportUnknownSession(RouterTarget target);

    /// <summary>False while the member is marked unhealthy.</summary>
    bool IsHealthy(string routerId, long? sessionId);
}

/// <summary>In-process member health, on the injected clock; each gateway replica learns on its own.</summary>
internal sealed partial class RouterMemberHealth(IOptionsMonitor<FleetOptions> options, TimeProvider time, ILogger<RouterMemberHealth> logger) : IRouterMemberHealth
{
    private readonly ConcurrentDictionary<(string RouterId, long? SessionId), DateTimeOffset> _unhealthyUntil = new();

    public void ReportUnknownSession(RouterTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var cooldown = TimeSpan.FromSeconds(options.CurrentValue.UnknownSessionCooldownSeconds);
        _unhealthyUntil[(target.RouterId, target.SessionId)] = time.GetUtcNow() + cooldown;
        Log.UnknownSession(logger, target.ToString(), (int)cooldown.TotalSeconds);
    }

    public bool IsHealthy(string routerId, long? sessionId)
    {
        if (_unhealthyUntil.IsEmpty || !_unhealthyUntil.TryGetValue((routerId, sessionId), out var until))
        {
            return true;
        }

        if (time.GetUtcNow() < until)
        {
            return false;
        }

        // Cooled down: tried again (a later 404 marks it again).
        _unhealthyUntil.TryRemove(new KeyValuePair<(string, long?), DateTimeOffset>((routerId, sessionId), until));
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4020, EventName = "RouterMemberUnknownSession", Level = LogLevel.Warning,
            Message = "Router member {Member} answered 404 (session unknown to the router, or a proxy blocks the route); left out of selection for {CooldownSeconds} s")]
        public static partial void UnknownSession(ILogger logger, string member, int cooldownSeconds);
    }
}

using System.Text.RegularExpressions;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.OpenAI;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Gateway.Health;

/// <summary>
/// Writes a <see cref="HealthReport"/> for anonymous callers: overall status, and each check's name, status,
/// duration and, when it is not healthy, a short reason. Exceptions and check data are never written. A reason is
/// the check's own description, except that a description which only repeats an exception's message (what a
/// throwing check gets) becomes the exception's type, URLs, IP addresses and connection-string settings are
/// masked, and it is cut to <see cref="MaxReasonLength"/> characters: the Portal's checks write safe reasons, and
/// this keeps a check added by the host from leaking a connection string or a router address.
/// </summary>
internal static partial class HealthResponseWriter
{
    public const int MaxReasonLength = 200;

    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        RequestIds.Get(context); // X-Request-Id, like every other gateway response
        var checks = report.Entries
            .Select(e => new HealthCheckDto(e.Key, StatusName(e.Value.Status), Milliseconds(e.Value.Duration), Reason(e.Value)))
            .ToArray();
        var body = new HealthReportDto(StatusName(report.Status), Milliseconds(report.TotalDuration), checks);
        return context.Response.WriteAsJsonAsync(body, GatewayJson.Context.HealthReportDto, "application/json", context.RequestAborted);
    }

    public static string StatusName(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "healthy",
        HealthStatus.Degraded => "degraded",
        _ => "unhealthy",
    };

    internal static string? Reason(HealthReportEntry entry)
    {
        if (entry.Status == HealthStatus.Healthy)
        {
            return null;
        }

        var description = entry.Description;
        if (entry.Exception is { } exception
            && (string.IsNullOrEmpty(description) || (exception.Message.Length > 0 && description.Contains(exception.Message, StringComparison.Ordinal))))
        {
            return $"check failed ({exception.GetType().Name})";
        }

        if (string.IsNullOrWhiteSpace(description))
        {
            return null;
        }

        var masked = Secrets().Replace(description, "[redacted]");
        return masked.Length <= MaxReasonLength ? masked : string.Concat(masked.AsSpan(0, MaxReasonLength - 1), "…");
    }

    private static double Milliseconds(TimeSpan duration) => Math.Round(duration.TotalMilliseconds, 1);

    // URLs, IPv4 addresses (with a port), and key=value settings of Npgsql, SQLite and StackExchange.Redis connection strings.
    [GeneratedRegex(
        @"[a-z][a-z0-9+.\-]*://[^\s,;'""]+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\b(?:password|pwd|user ?id|uid|user ?name|user|host|server|data ?source|address|port|database|initial catalog|api ?key|token|secret|key)\s*=\s*[^;,\s]*",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Secrets();
}

/// <summary>The health body: overall status, total duration, and every check that ran.</summary>
internal sealed record HealthReportDto(string Status, double DurationMs, IReadOnlyList<HealthCheckDto> Checks);

/// <summary>One check: <c>reason</c> only when it is not healthy.</summary>
internal sealed record HealthCheckDto(string Name, string Status, double DurationMs, string? Reason);

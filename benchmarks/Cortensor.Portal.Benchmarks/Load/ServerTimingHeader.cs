using System.Globalization;

namespace Cortensor.Portal.Benchmarks.Load;

/// <summary>Reads one metric's <c>dur</c> from a <c>Server-Timing</c> header (<c>gateway;dur=0.4, limits;dur=0.2, router;dur=0.3</c>).</summary>
internal static class ServerTimingHeader
{
    /// <summary>The metric's duration in ms, or NaN when the header does not carry it.</summary>
    public static double Read(string header, string metric)
    {
        foreach (var part in header.AsSpan().Split(','))
        {
            var entry = header.AsSpan()[part].Trim();
            if (!entry.StartsWith(metric, StringComparison.Ordinal) || !entry[metric.Length..].StartsWith(";dur=", StringComparison.Ordinal))
            {
                continue;
            }

            var value = entry[(metric.Length + 5)..];
            var end = value.IndexOf(';');
            return double.TryParse(end < 0 ? value : value[..end], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) ? ms : double.NaN;
        }

        return double.NaN;
    }
}

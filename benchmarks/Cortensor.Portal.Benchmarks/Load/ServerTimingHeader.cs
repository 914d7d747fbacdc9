using System.Globalization;

namespace Cortensor.Portal.Benchmarks.Load;

/// <summary>
/// Reads one metric's <c>dur</c> from a <c>Server-Timing</c> header (<c>gateway;dur=0.4, limits;dur=0.2, router;dur=0.3</c>):
/// entries separated by commas, each a name then <c>;</c>-separated parameters in any order (<c>desc</c> may come first).
/// </summary>
internal static class ServerTimingHeader
{
    /// <summary>The metric's duration in ms, or NaN when the header does not carry it (or carries no number for it).</summary>
    public static double Read(string header, string metric)
    {
        ArgumentNullException.ThrowIfNull(header);
        var text = header.AsSpan();
        foreach (var entryRange in text.Split(','))
        {
            var entry = text[entryRange];
            var first = true;
            foreach (var partRange in entry.Split(';'))
            {
                var part = entry[partRange].Trim();
                if (first)
                {
                    if (!part.Equals(metric, StringComparison.Ordinal))
                    {
                        break;
                    }

                    first = false;
                    continue;
                }

                if (part.StartsWith("dur=", StringComparison.OrdinalIgnoreCase))
                {
                    return double.TryParse(part[4..], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) ? ms : double.NaN;
                }
            }
        }

        return double.NaN;
    }
}

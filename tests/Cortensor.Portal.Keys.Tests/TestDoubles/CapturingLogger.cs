using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Keys.Tests.TestDoubles;

/// <summary>Records every log entry: level, event id, rendered message and the structured values.</summary>
internal sealed class CapturingLogger<T> : ILogger<T>
{
    public ConcurrentQueue<CapturedLogEntry> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.Select(p => $"{p.Key}={p.Value}").ToArray()
            : [];
        Entries.Enqueue(new CapturedLogEntry(logLevel, eventId, formatter(state, exception), values));
    }

    /// <summary>Every message and structured value, for "never logged" assertions.</summary>
    public string AllText() => string.Join('\n', Entries.Select(e => e.Message + "\n" + string.Join('\n', e.Values)));
}

internal sealed record CapturedLogEntry(LogLevel Level, EventId EventId, string Message, IReadOnlyList<string> Values);

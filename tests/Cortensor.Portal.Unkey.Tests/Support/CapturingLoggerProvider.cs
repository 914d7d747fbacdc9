using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Unkey.Tests.Support;

/// <summary>Keeps every formatted log line, its structured values and its exception, at every level.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<(string Category, LogLevel Level, EventId EventId, string Text)> _entries = new();

    public IReadOnlyList<(string Category, LogLevel Level, EventId EventId, string Text)> Entries => [.. _entries];

    public string AllText => string.Join('\n', _entries.Select(e => e.Text));

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _entries);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<(string, LogLevel, EventId, string)> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
        {
            entries.Enqueue((category, LogLevel.None, default, $"{category} scope: {state}"));
            return null;
        }

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var structured = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(" ", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
            entries.Enqueue((category, logLevel, eventId, $"{logLevel} {category} [{eventId.Id}]: {formatter(state, exception)} {structured} {exception}"));
        }
    }
}

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>
/// Tells a test when the app has read part of a request body and is waiting for more, so it can act (reset the
/// stream, stall) at exactly that point instead of after a guessed delay. It wraps the body stream of every request
/// and passes every read and every failure through unchanged.
/// </summary>
internal sealed class BodyReadProbe : IStartupFilter
{
    private readonly TaskCompletionSource _waitingForMore = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when a body read is pending after at least one byte of that body has been read.</summary>
    public Task WaitingForMoreBody => _waitingForMore.Task;

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, nextMiddleware) =>
        {
            context.Request.Body = new ProbedStream(context.Request.Body, this);
            return nextMiddleware(context);
        });
        next(app);
    };

    private sealed class ProbedStream(Stream inner, BodyReadProbe probe) : Stream
    {
        private long _read;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var pending = inner.ReadAsync(buffer, cancellationToken);
            if (_read > 0 && !pending.IsCompleted)
            {
                probe._waitingForMore.TrySetResult();
            }

            var read = await pending;
            _read += read;
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("The gateway reads bodies asynchronously.");

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

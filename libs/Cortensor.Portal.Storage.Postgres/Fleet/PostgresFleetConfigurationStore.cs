using System.Data;
using System.Globalization;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using static Cortensor.Portal.Storage.Postgres.Accounts.PostgresParameters;

namespace Cortensor.Portal.Storage.Postgres.Fleet;

/// <summary>
/// <see cref="IFleetConfigurationStore"/> over <c>routers</c>, <c>router_pools</c>, <c>router_pool_members</c> and
/// <c>router_pool_models</c>. Router keys are never stored: only <see cref="RouterOptions.ApiKeyRef"/>.
/// </summary>
/// <remarks>
/// <para>
/// Every write runs in one transaction that first takes <c>pg_advisory_xact_lock(&lt;key derived from the schema
/// name&gt;)</c>, so the reference checks (member routers exist, the model's pool exists, no pool uses a router being
/// deleted) and the change cannot interleave with another writer, also across replicas. The lock is
/// transaction-scoped (released by COMMIT), so this is safe behind a transaction-mode pooler.
/// <see cref="SavePoolAsync"/> resolves the member routers in one query, then upserts the pool, deletes its members
/// and inserts the new list (with its positions) in one batch; an unknown router rolls everything back.
/// <see cref="SaveModelAsync"/> is one <c>INSERT … SELECT … FROM router_pools</c>, so an unknown pool inserts nothing.
/// </para>
/// <para>
/// Ids (router id, pool name, model alias) match case-insensitively, as the <see cref="FleetOptions"/> dictionaries
/// do: saving <c>Router-1</c> over <c>router-1</c> updates that row and keeps its stored spelling, and members and
/// models store the spelling of the router or pool they name. <c>created_at</c> is set from the
/// <see cref="TimeProvider"/> when a row is first inserted and kept on replace.
/// </para>
/// <para>
/// <see cref="LoadAsync"/> reads the four tables in one round trip inside a <c>REPEATABLE READ</c> transaction (one
/// snapshot). Routers need an absolute <see cref="RouterOptions.BaseUrl"/>; <see cref="RouterOptions.Simulated"/>
/// routers live in configuration only and are refused. A pool's <see cref="PoolOptions.Enabled"/> maps to
/// <c>state</c> <c>active</c>/<c>disabled</c>; a pool put in <c>draining</c> by hand loads as disabled. A member
/// without a session (OpenAI-compatible routers) has a null <c>session_id</c>.
/// </para>
/// </remarks>
public sealed partial class PostgresFleetConfigurationStore : IFleetConfigurationStore
{
    private const string CheckViolation = "23514";

    private const string PoolColumns =
        "name, state, prompt_format, prompt_type, task_timeout_seconds, precommit_timeout_seconds, http_timeout_slack_seconds, " +
        "upstream_model, default_max_tokens, default_temperature, default_top_p, default_top_k, " +
        "router_queues, stream_queue_length, stream_queue_wait_seconds";

    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly long _lockKey;
    private readonly string _lockSql;
    private readonly string _saveRouterSql;
    private readonly string _deleteRouterSql;
    private readonly string _resolveRoutersSql;
    private readonly string _resolvePoolSql;
    private readonly string _upsertPoolSql;
    private readonly string _deleteMembersSql;
    private readonly string _insertMembersSql;
    private readonly string _saveModelSql;
    private readonly string _deleteModelSql;
    private readonly string _loadRoutersSql;
    private readonly string _loadPoolsSql;
    private readonly string _loadMembersSql;
    private readonly string _loadModelsSql;

    public PostgresFleetConfigurationStore(
        NpgsqlDataSource dataSource,
        IOptions<PostgresStorageOptions> options,
        TimeProvider? timeProvider = null,
        ILogger<PostgresFleetConfigurationStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        var schema = new StoreSchema(options.Value.Schema);
        _lockKey = StoreSchema.DeriveLockKey("fleet", schema.Name);
        var routers = schema.Table("routers");
        var pools = schema.Table("router_pools");
        var members = schema.Table("router_pool_members");
        var models = schema.Table("router_pool_models");

        _lockSql = "SELECT pg_catalog.pg_advisory_xact_lock($1)";

        // Ids match case-insensitively (as the FleetOptions dictionaries do): a save over an id that differs
        // only in case updates that row and keeps its stored spelling. Runs under the fleet lock.
        _saveRouterSql =
            $"WITH stored AS (SELECT id FROM {routers} WHERE lower(id) = lower($1) ORDER BY id COLLATE \"C\" LIMIT 1) " +
            $"INSERT INTO {routers} (id, base_url, protocol, api_version, api_key_ref, enabled, created_at, url_form) " +
            "VALUES (COALESCE((SELECT id FROM stored), $1), $2, $3, $4, $5, $6, $7, $8) " +
            "ON CONFLICT (id) DO UPDATE SET base_url = EXCLUDED.base_url, protocol = EXCLUDED.protocol, api_version = EXCLUDED.api_version, " +
            "api_key_ref = EXCLUDED.api_key_ref, enabled = EXCLUDED.enabled, url_form = EXCLUDED.url_form";

        // One statement: the stored router, a pool that uses it, and the delete that happens only when none does.
        _deleteRouterSql =
            $"WITH stored AS (SELECT id FROM {routers} WHERE lower(id) = lower($1) ORDER BY id COLLATE \"C\" LIMIT 1), " +
            $"used AS (SELECT m.pool_name FROM {members} m JOIN stored s ON m.router_id = s.id ORDER BY m.pool_name COLLATE \"C\" LIMIT 1), " +
            $"deleted AS (DELETE FROM {routers} WHERE id = (SELECT id FROM stored) AND NOT EXISTS (SELECT 1 FROM used) RETURNING id) " +
            "SELECT (SELECT id FROM stored), (SELECT pool_name FROM used), (SELECT count(*) FROM deleted)::integer";

        // Each member's router as stored (null when unknown), in list order; then the pool's stored name.
        _resolveRoutersSql =
            "SELECT r.id, s.id FROM unnest($1::text[]) WITH ORDINALITY AS r(id, ordinality) " +
            $"LEFT JOIN LATERAL (SELECT x.id FROM {routers} x WHERE lower(x.id) = lower(r.id) ORDER BY x.id COLLATE \"C\" LIMIT 1) s ON true " +
            "ORDER BY r.ordinality";
        _resolvePoolSql = $"SELECT name FROM {pools} WHERE lower(name) = lower($1) ORDER BY name COLLATE \"C\" LIMIT 1";
        _upsertPoolSql =
            $"INSERT INTO {pools} ({PoolColumns}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) " +
            "ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, prompt_format = EXCLUDED.prompt_format, prompt_type = EXCLUDED.prompt_type, " +
            "task_timeout_seconds = EXCLUDED.task_timeout_seconds, precommit_timeout_seconds = EXCLUDED.precommit_timeout_seconds, " +
            "http_timeout_slack_seconds = EXCLUDED.http_timeout_slack_seconds, upstream_model = EXCLUDED.upstream_model, " +
            "default_max_tokens = EXCLUDED.default_max_tokens, default_temperature = EXCLUDED.default_temperature, " +
            "default_top_p = EXCLUDED.default_top_p, default_top_k = EXCLUDED.default_top_k, router_queues = EXCLUDED.router_queues, " +
            "stream_queue_length = EXCLUDED.stream_queue_length, stream_queue_wait_seconds = EXCLUDED.stream_queue_wait_seconds";
        _deleteMembersSql = $"DELETE FROM {members} WHERE pool_name = $1";
        _insertMembersSql =
            $"INSERT INTO {members} (pool_name, position, router_id, session_id, enabled) " +
            "SELECT $1, (m.ordinality - 1)::integer, m.router_id, m.session_id, m.enabled " +
            "FROM unnest($2::text[], $3::bigint[], $4::boolean[]) WITH ORDINALITY AS m(router_id, session_id, enabled, ordinality)";

        // The pool is resolved in the same statement: an unknown pool selects no row and inserts nothing.
        _saveModelSql =
            $"WITH pool AS (SELECT name FROM {pools} WHERE lower(name) = lower($2) ORDER BY name COLLATE \"C\" LIMIT 1), " +
            $"stored AS (SELECT alias FROM {models} WHERE lower(alias) = lower($1) ORDER BY alias COLLATE \"C\" LIMIT 1) " +
            $"INSERT INTO {models} (alias, pool_name, context_tokens, max_output_tokens, enabled, owned_by, created_unix_seconds, created_at) " +
            "SELECT COALESCE((SELECT alias FROM stored), $1), pool.name, $3, $4, $5, $6, $7, $8 FROM pool " +
            "ON CONFLICT (alias) DO UPDATE SET pool_name = EXCLUDED.pool_name, context_tokens = EXCLUDED.context_tokens, " +
            "max_output_tokens = EXCLUDED.max_output_tokens, enabled = EXCLUDED.enabled, owned_by = EXCLUDED.owned_by, " +
            "created_unix_seconds = EXCLUDED.created_unix_seconds";
        _deleteModelSql = $"DELETE FROM {models} WHERE lower(alias) = lower($1)";
        _loadRoutersSql = $"SELECT id, base_url, protocol, api_version, api_key_ref, enabled, url_form FROM {routers} ORDER BY id COLLATE \"C\"";
        _loadPoolsSql = $"SELECT {PoolColumns} FROM {pools} ORDER BY name COLLATE \"C\"";
        _loadMembersSql = $"SELECT pool_name, router_id, session_id, enabled FROM {members} ORDER BY pool_name COLLATE \"C\", position";
        _loadModelsSql =
            $"SELECT alias, pool_name, context_tokens, max_output_tokens, enabled, owned_by, created_unix_seconds FROM {models} ORDER BY alias COLLATE \"C\"";
    }

    public async Task<FleetOptions> LoadAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
        await using var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(_loadRoutersSql),
                new NpgsqlBatchCommand(_loadPoolsSql),
                new NpgsqlBatchCommand(_loadMembersSql),
                new NpgsqlBatchCommand(_loadModelsSql),
            },
        };

        var options = new FleetOptions();
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                options.Routers[reader.GetString(0)] = new RouterOptions
                {
                    BaseUrl = new Uri(reader.GetString(1), UriKind.Absolute),
                    ApiKey = null,
                    ApiKeyRef = reader.GetNullableString(4),
                    Protocol = FleetStoredNames.ParseProtocol(reader.GetString(2)),
                    ApiVersion = reader.GetString(3),
                    Enabled = reader.GetBoolean(5),
                    UrlForm = FleetStoredNames.ParseUrlForm(reader.GetString(6)),
                };
            }

            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                options.Pools[reader.GetString(0)] = new PoolOptions
                {
                    Members = [],
                    Enabled = reader.GetString(1) == "active",
                    PromptFormat = FleetStoredNames.ParsePromptFormat(reader.GetString(2)),
                    PromptType = reader.GetNullableInt32(3),
                    TaskTimeoutSeconds = reader.GetInt32(4),
                    PrecommitTimeoutSeconds = reader.GetNullableInt32(5),
                    HttpTimeoutSlackSeconds = reader.GetInt32(6),
                    UpstreamModel = reader.GetNullableString(7),
                    Defaults = new SamplingDefaults
                    {
                        MaxTokens = reader.GetInt32(8),
                        Temperature = reader.GetNullableDouble(9),
                        TopP = reader.GetNullableDouble(10),
                        TopK = reader.GetNullableInt32(11),
                    },
                    RouterQueues = FleetStoredNames.ParseRouterQueues(reader.GetString(12)),
                    StreamQueueLength = reader.GetInt32(13),
                    StreamQueueWaitSeconds = reader.GetInt32(14),
                };
            }

            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (options.Pools.TryGetValue(reader.GetString(0), out var pool))
                {
                    pool.Members.Add(new PoolMemberOptions
                    {
                        Router = reader.GetString(1),
                        SessionId = reader.GetNullableInt64(2),
                        Enabled = reader.GetBoolean(3),
                    });
                }
            }

            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                options.Models[reader.GetString(0)] = new ModelOptions
                {
                    Pool = reader.GetString(1),
                    ContextTokens = reader.GetInt32(2),
                    MaxOutputTokens = reader.GetInt32(3),
                    Enabled = reader.GetBoolean(4),
                    OwnedBy = reader.GetString(5),
                    Created = reader.GetInt64(6),
                };
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return options;
    }

    /// <exception cref="ArgumentException">
    /// The id or <see cref="RouterOptions.ApiVersion"/> is empty, the router has no absolute
    /// <see cref="RouterOptions.BaseUrl"/>, it is <see cref="RouterOptions.Simulated"/>, or its
    /// <see cref="RouterOptions.ApiKeyRef"/> is not <c>env:NAME</c> (<see cref="RouterKeyReference"/>).
    /// </exception>
    public async Task SaveRouterAsync(string routerId, RouterOptions router, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(routerId);
        ArgumentNullException.ThrowIfNull(router);
        if (router.Simulated)
        {
            throw new ArgumentException($"Router '{routerId}' is simulated; simulated routers live in configuration only.", nameof(router));
        }

        if (router.BaseUrl is not { IsAbsoluteUri: true } baseUrl)
        {
            throw new ArgumentException($"Router '{routerId}' needs an absolute BaseUrl to be stored (simulated routers live in configuration only).", nameof(router));
        }

        // Only references the fleet resolves: anything else would load as a router that cannot start.
        if (router.ApiKeyRef is not null && !RouterKeyReference.IsSupported(router.ApiKeyRef))
        {
            throw new ArgumentException($"Router '{routerId}': ApiKeyRef must be {RouterKeyReference.EnvironmentPrefix}NAME, the environment variable that holds the router's key.", nameof(router));
        }

        ArgumentException.ThrowIfNullOrEmpty(router.ApiVersion, nameof(router));
        var protocol = FleetStoredNames.Of(router.Protocol);
        var urlForm = FleetStoredNames.Of(router.UrlForm);

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);
        await using (var command = new NpgsqlCommand(_saveRouterSql, connection, transaction))
        {
            var p = command.Parameters;
            p.Add(Text(routerId));
            p.Add(Text(baseUrl.OriginalString));
            p.Add(Text(protocol));
            p.Add(Text(router.ApiVersion));
            p.Add(NullableText(router.ApiKeyRef));
            p.Add(Boolean(router.Enabled));
            p.Add(Timestamp(_timeProvider.GetUtcNow()));
            p.Add(Text(urlForm));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        Log.RouterSaved(_logger, routerId, router.Protocol, router.Enabled, router.ApiKey is not null);
    }

    /// <exception cref="InvalidOperationException">A pool still has the router as a member; nothing is changed.</exception>
    public async Task<bool> DeleteRouterAsync(string routerId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(routerId);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);

        string? storedId;
        string? usedBy;
        int deleted;
        await using (var command = new NpgsqlCommand(_deleteRouterSql, connection, transaction))
        {
            command.Parameters.Add(Text(routerId));
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            storedId = reader.GetNullableString(0);
            usedBy = reader.GetNullableString(1);
            deleted = reader.GetInt32(2);
        }

        if (usedBy is not null)
        {
            throw new InvalidOperationException($"Router '{storedId}' cannot be deleted: pool '{usedBy}' still uses it. Remove it from every pool first.");
        }

        await transaction.CommitAsync(cancellationToken);
        if (deleted == 1)
        {
            Log.RouterDeleted(_logger, storedId!);
        }

        return deleted == 1;
    }

    /// <exception cref="ArgumentException">
    /// The name is empty, a member names no router, the list names the same (router, session) twice, or a setting is
    /// out of range.
    /// </exception>
    /// <exception cref="InvalidOperationException">A member router does not exist; nothing is changed.</exception>
    public async Task SavePoolAsync(string poolName, PoolOptions pool, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(poolName);
        ArgumentNullException.ThrowIfNull(pool);
        var members = pool.Members ?? [];
        var requested = new string[members.Count];
        var sessionIds = new long?[members.Count];
        var enabled = new bool[members.Count];
        var seen = new HashSet<(string, long?)>();
        for (var i = 0; i < members.Count; i++)
        {
            var member = members[i];
            if (member is null || string.IsNullOrWhiteSpace(member.Router))
            {
                throw new ArgumentException($"Pool '{poolName}' has a member without a router.", nameof(pool));
            }

            if (!seen.Add((member.Router.ToUpperInvariant(), member.SessionId)))
            {
                throw new ArgumentException(
                    $"Pool '{poolName}' lists router '{member.Router}' session '{member.SessionId?.ToString(CultureInfo.InvariantCulture)}' twice.",
                    nameof(pool));
            }

            requested[i] = member.Router;
            sessionIds[i] = member.SessionId;
            enabled[i] = member.Enabled;
        }

        var defaults = pool.Defaults ?? new SamplingDefaults();
        var promptFormat = FleetStoredNames.Of(pool.PromptFormat);
        var routerQueues = FleetStoredNames.Of(pool.RouterQueues);

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);

        // One round trip: the members' routers as stored, and the pool's stored name.
        var routerIds = new string[members.Count];
        string name;
        await using (var resolve = new NpgsqlBatch(connection, transaction))
        {
            var routers = new NpgsqlBatchCommand(_resolveRoutersSql);
            routers.Parameters.Add(TextArray(requested));
            var stored = new NpgsqlBatchCommand(_resolvePoolSql);
            stored.Parameters.Add(Text(poolName));
            resolve.BatchCommands.Add(routers);
            resolve.BatchCommands.Add(stored);

            var missing = new List<string>();
            await using var reader = await resolve.ExecuteReaderAsync(cancellationToken);
            for (var i = 0; await reader.ReadAsync(cancellationToken); i++)
            {
                if (reader.GetNullableString(1) is { } id)
                {
                    routerIds[i] = id;
                }
                else
                {
                    missing.Add(reader.GetString(0));
                }
            }

            await reader.NextResultAsync(cancellationToken);
            name = await reader.ReadAsync(cancellationToken) ? reader.GetString(0) : poolName;

            if (missing.Count > 0)
            {
                throw new InvalidOperationException(
                    $"Pool '{poolName}' names routers that are not stored: {string.Join(", ", missing.Distinct(StringComparer.Ordinal))}. Save the routers first.");
            }
        }

        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            var upsert = new NpgsqlBatchCommand(_upsertPoolSql);
            var p = upsert.Parameters;
            p.Add(Text(name));
            p.Add(Text(pool.Enabled ? "active" : "disabled"));
            p.Add(Text(promptFormat));
            p.Add(NullableInteger(pool.PromptType));
            p.Add(Integer(pool.TaskTimeoutSeconds));
            p.Add(NullableInteger(pool.PrecommitTimeoutSeconds));
            p.Add(Integer(pool.HttpTimeoutSlackSeconds));
            p.Add(NullableText(pool.UpstreamModel));
            p.Add(Integer(defaults.MaxTokens));
            p.Add(NullableDouble(defaults.Temperature));
            p.Add(NullableDouble(defaults.TopP));
            p.Add(NullableInteger(defaults.TopK));
            p.Add(Text(routerQueues));
            p.Add(Integer(pool.StreamQueueLength));
            p.Add(Integer(pool.StreamQueueWaitSeconds));
            p.Add(Timestamp(_timeProvider.GetUtcNow()));
            batch.BatchCommands.Add(upsert);

            var delete = new NpgsqlBatchCommand(_deleteMembersSql);
            delete.Parameters.Add(Text(name));
            batch.BatchCommands.Add(delete);

            if (routerIds.Length > 0)
            {
                var insert = new NpgsqlBatchCommand(_insertMembersSql);
                insert.Parameters.Add(Text(name));
                insert.Parameters.Add(TextArray(routerIds));
                insert.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = sessionIds, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter<bool[]> { TypedValue = enabled, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Boolean });
                batch.BatchCommands.Add(insert);
            }

            try
            {
                await batch.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException ex) when (ex.SqlState == CheckViolation)
            {
                throw new ArgumentException($"Pool '{poolName}' has a setting out of range ({ex.ConstraintName}).", nameof(pool), ex);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        Log.PoolSaved(_logger, name, routerIds.Length, pool.Enabled);
    }

    /// <exception cref="ArgumentException">The alias or the pool name is empty.</exception>
    /// <exception cref="InvalidOperationException">The model's pool does not exist; nothing is changed.</exception>
    public async Task SaveModelAsync(string alias, ModelOptions model, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(alias);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(model.Pool, nameof(model));

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);
        await using (var command = new NpgsqlCommand(_saveModelSql, connection, transaction))
        {
            var p = command.Parameters;
            p.Add(Text(alias));
            p.Add(Text(model.Pool));
            p.Add(Integer(model.ContextTokens));
            p.Add(Integer(model.MaxOutputTokens));
            p.Add(Boolean(model.Enabled));
            p.Add(Text(model.OwnedBy ?? "cortensor"));
            p.Add(Bigint(model.Created));
            p.Add(Timestamp(_timeProvider.GetUtcNow()));
            if (await command.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                throw new InvalidOperationException($"Model '{alias}' names pool '{model.Pool}', which is not stored. Save the pool first.");
            }
        }

        await transaction.CommitAsync(cancellationToken);
        Log.ModelSaved(_logger, alias, model.Pool, model.Enabled);
    }

    public async Task<bool> DeleteModelAsync(string alias, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(alias);
        await using var command = _dataSource.CreateCommand(_deleteModelSql);
        command.Parameters.Add(Text(alias));
        var deleted = await command.ExecuteNonQueryAsync(cancellationToken) > 0;
        if (deleted)
        {
            Log.ModelDeleted(_logger, alias);
        }

        return deleted;
    }

    private async Task LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_lockSql, connection, transaction);
        command.Parameters.Add(Bigint(_lockKey));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>EventIds 7600-7699. Router keys are never logged.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7600, EventName = "FleetRouterSaved", Level = LogLevel.Information,
            Message = "Saved router {RouterId} (protocol {Protocol}, enabled {Enabled}; an ApiKey was given: {ApiKeyGiven}, never stored)")]
        public static partial void RouterSaved(ILogger logger, string routerId, RouterProtocol protocol, bool enabled, bool apiKeyGiven);

        [LoggerMessage(EventId = 7601, EventName = "FleetRouterDeleted", Level = LogLevel.Information,
            Message = "Deleted router {RouterId}")]
        public static partial void RouterDeleted(ILogger logger, string routerId);

        [LoggerMessage(EventId = 7602, EventName = "FleetPoolSaved", Level = LogLevel.Information,
            Message = "Saved pool {Pool} with {Members} members (enabled {Enabled})")]
        public static partial void PoolSaved(ILogger logger, string pool, int members, bool enabled);

        [LoggerMessage(EventId = 7603, EventName = "FleetModelSaved", Level = LogLevel.Information,
            Message = "Saved model {Alias} on pool {Pool} (enabled {Enabled})")]
        public static partial void ModelSaved(ILogger logger, string alias, string pool, bool enabled);

        [LoggerMessage(EventId = 7604, EventName = "FleetModelDeleted", Level = LogLevel.Information,
            Message = "Deleted model {Alias}")]
        public static partial void ModelDeleted(ILogger logger, string alias);
    }
}

using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Accounts;

/// <summary>
/// <see cref="IAccountStore"/> over <c>users</c>, <c>organizations</c> and <c>organization_members</c>. Statuses and roles
/// are lower-case text; timestamps are Unix microseconds (UTC). Membership rows have foreign keys to both tables, so a
/// member of an unknown org or user is refused. Thread-safe: every call uses its own pooled connection.
/// </summary>
public sealed class SqliteAccountStore : IAccountStore
{
    private const string UserColumns = "id, auth_provider, auth_subject, email, display_name, status, created_at";
    private const string OrgColumns = "id, name, owner_user_id, status, created_at";

    private readonly SqliteDatabase _database;

    public SqliteAccountStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    /// <exception cref="InvalidOperationException">A user with this id, or with this auth provider and subject, is already stored.</exception>
    public async Task AddUserAsync(PortalUser user, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentException.ThrowIfNullOrEmpty(user.Id, nameof(user));
        ArgumentException.ThrowIfNullOrEmpty(user.AuthProvider, nameof(user));
        ArgumentException.ThrowIfNullOrEmpty(user.AuthSubject, nameof(user));

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                INSERT INTO users ({UserColumns})
                VALUES ($id, $auth_provider, $auth_subject, $email, $display_name, $status, $created_at);
                """;
            var p = command.Parameters;
            p.AddWithValue("$id", user.Id);
            p.AddWithValue("$auth_provider", user.AuthProvider);
            p.AddWithValue("$auth_subject", user.AuthSubject);
            p.AddWithValue("$email", SqliteValues.OrDbNull(user.Email));
            p.AddWithValue("$display_name", SqliteValues.OrDbNull(user.DisplayName));
            p.AddWithValue("$status", ToText(user.Status));
            p.AddWithValue("$created_at", UnixMicroseconds.From(user.CreatedAt));
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (SqliteValues.IsConstraintViolation(ex))
            {
                throw new InvalidOperationException(
                    $"A user with id '{user.Id}' or identity '{user.AuthProvider}:{user.AuthSubject}' is already stored.", ex);
            }
        }
    }

    public Task<PortalUser?> FindUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        return FindUserWhereAsync("id = $a", userId, null, cancellationToken);
    }

    public Task<PortalUser?> FindUserByIdentityAsync(string authProvider, string authSubject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(authProvider);
        ArgumentNullException.ThrowIfNull(authSubject);
        return FindUserWhereAsync("auth_provider = $a AND auth_subject = $b", authProvider, authSubject, cancellationToken);
    }

    /// <exception cref="InvalidOperationException">An organization with this id is already stored.</exception>
    public async Task AddOrganizationAsync(Organization organization, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(organization);
        ArgumentException.ThrowIfNullOrEmpty(organization.Id, nameof(organization));
        ArgumentNullException.ThrowIfNull(organization.Name, nameof(organization));

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"INSERT INTO organizations ({OrgColumns}) VALUES ($id, $name, $owner_user_id, $status, $created_at);";
            var p = command.Parameters;
            p.AddWithValue("$id", organization.Id);
            p.AddWithValue("$name", organization.Name);
            p.AddWithValue("$owner_user_id", SqliteValues.OrDbNull(organization.OwnerUserId));
            p.AddWithValue("$status", ToText(organization.Status));
            p.AddWithValue("$created_at", UnixMicroseconds.From(organization.CreatedAt));
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (SqliteValues.IsConstraintViolation(ex))
            {
                throw new InvalidOperationException($"An organization with id '{organization.Id}' is already stored.", ex);
            }
        }
    }

    public async Task<Organization?> FindOrganizationAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {OrgColumns} FROM organizations WHERE id = $id;";
            command.Parameters.AddWithValue("$id", orgId);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadOrganization(reader, 0) : null;
            }
        }
    }

    public async Task<bool> SetOrganizationStatusAsync(string orgId, OrganizationStatus status, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        var text = ToText(status);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE organizations SET status = $status WHERE id = $id;";
            command.Parameters.AddWithValue("$status", text);
            command.Parameters.AddWithValue("$id", orgId);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    /// <remarks>An existing member keeps its <c>created_at</c>; only the role changes.</remarks>
    /// <exception cref="InvalidOperationException">The org or the user does not exist.</exception>
    public async Task SetMemberAsync(OrganizationMember member, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(member);
        ArgumentNullException.ThrowIfNull(member.OrgId, nameof(member));
        ArgumentNullException.ThrowIfNull(member.UserId, nameof(member));
        var role = ToText(member.Role);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                INSERT INTO organization_members (org_id, user_id, role, created_at)
                VALUES ($org_id, $user_id, $role, $created_at)
                ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role;
                """;
            var p = command.Parameters;
            p.AddWithValue("$org_id", member.OrgId);
            p.AddWithValue("$user_id", member.UserId);
            p.AddWithValue("$role", role);
            p.AddWithValue("$created_at", UnixMicroseconds.From(member.CreatedAt));
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (SqliteValues.IsConstraintViolation(ex))
            {
                throw new InvalidOperationException(
                    $"Cannot add user '{member.UserId}' to organization '{member.OrgId}': the organization or the user does not exist.", ex);
            }
        }
    }

    public async Task<bool> RemoveMemberAsync(string orgId, string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(userId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM organization_members WHERE org_id = $org_id AND user_id = $user_id;";
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$user_id", userId);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    public async Task<IReadOnlyList<OrganizationMember>> ListMembersAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                SELECT org_id, user_id, role, created_at FROM organization_members
                WHERE org_id = $org_id
                ORDER BY created_at, user_id;
                """;
            command.Parameters.AddWithValue("$org_id", orgId);
            var members = new List<OrganizationMember>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    members.Add(new OrganizationMember(reader.GetString(0), reader.GetString(1), RoleFromText(reader.GetString(2)), reader.GetTimestamp(3)));
                }
            }

            return members;
        }
    }

    /// <remarks>Ordered by name (binary collation), then id.</remarks>
    public async Task<IReadOnlyList<Organization>> ListOrganizationsForUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                SELECT o.id, o.name, o.owner_user_id, o.status, o.created_at
                FROM organization_members AS m
                JOIN organizations AS o ON o.id = m.org_id
                WHERE m.user_id = $user_id
                ORDER BY o.name, o.id;
                """;
            command.Parameters.AddWithValue("$user_id", userId);
            var organizations = new List<Organization>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    organizations.Add(ReadOrganization(reader, 0));
                }
            }

            return organizations;
        }
    }

    private async Task<PortalUser?> FindUserWhereAsync(string where, string a, string? b, CancellationToken cancellationToken)
    {
        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {UserColumns} FROM users WHERE {where};";
            command.Parameters.AddWithValue("$a", a);
            if (b is not null)
            {
                command.Parameters.AddWithValue("$b", b);
            }

            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }

                return new PortalUser
                {
                    Id = reader.GetString(0),
                    AuthProvider = reader.GetString(1),
                    AuthSubject = reader.GetString(2),
                    Email = reader.GetNullableString(3),
                    DisplayName = reader.GetNullableString(4),
                    Status = UserStatusFromText(reader.GetString(5)),
                    CreatedAt = reader.GetTimestamp(6),
                };
            }
        }
    }

    private static Organization ReadOrganization(SqliteDataReader reader, int first) => new()
    {
        Id = reader.GetString(first),
        Name = reader.GetString(first + 1),
        OwnerUserId = reader.GetNullableString(first + 2),
        Status = OrgStatusFromText(reader.GetString(first + 3)),
        CreatedAt = reader.GetTimestamp(first + 4),
    };

    internal static string ToText(UserStatus status) => status switch
    {
        UserStatus.Active => "active",
        UserStatus.Disabled => "disabled",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown user status."),
    };

    internal static UserStatus UserStatusFromText(string text) => text switch
    {
        "active" => UserStatus.Active,
        "disabled" => UserStatus.Disabled,
        _ => throw new InvalidOperationException($"Unknown user status '{text}' in users."),
    };

    internal static string ToText(OrganizationStatus status) => status switch
    {
        OrganizationStatus.Active => "active",
        OrganizationStatus.Suspended => "suspended",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown organization status."),
    };

    internal static OrganizationStatus OrgStatusFromText(string text) => text switch
    {
        "active" => OrganizationStatus.Active,
        "suspended" => OrganizationStatus.Suspended,
        _ => throw new InvalidOperationException($"Unknown organization status '{text}' in organizations."),
    };

    internal static string ToText(OrganizationRole role) => role switch
    {
        OrganizationRole.Owner => "owner",
        OrganizationRole.Admin => "admin",
        OrganizationRole.Member => "member",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "Unknown organization role."),
    };

    internal static OrganizationRole RoleFromText(string text) => text switch
    {
        "owner" => OrganizationRole.Owner,
        "admin" => OrganizationRole.Admin,
        "member" => OrganizationRole.Member,
        _ => throw new InvalidOperationException($"Unknown organization role '{text}' in organization_members."),
    };
}

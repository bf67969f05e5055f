/**
 * Which executors the dashboard shows first, and a summary of the volunteers by standing and
 * speed: with hundreds of tabs a flat list hides the few worth a look (quarantined, backing off,
 * late, failing), so those come first, then newcomers, then the trusted ones by speed.
 */
import type { ExecutorStatus, VolunteerStanding, VolunteerStatus } from '../../../shared/protocol/status.ts';
import { VOLUNTEER_STANDINGS } from '../../../shared/protocol/status.ts';

const STANDING_ORDER: Record<VolunteerStanding, number> = { quarantined: 0, backing_off: 1, probation: 2, paused: 3, trusted: 4 };

function trouble(volunteer: VolunteerStatus): number {
  return (volunteer.late_jobs ?? 0) + volunteer.failures + volunteer.violations;
}

/** Local workers, then volunteers: the troubled first, then by standing, then the fastest first. */
export function orderExecutors(executors: readonly ExecutorStatus[]): ExecutorStatus[] {
  const rank = (executor: ExecutorStatus): number => {
    if (executor.kind === 'local') return -1;
    if (executor.state === 'joining') return 5;
    return STANDING_ORDER[executor.standing ?? (executor.state === 'quarantined' ? 'quarantined' : 'probation')];
  };
  return [...executors].sort((a, b) => {
    const byRank = rank(a) - rank(b);
    if (byRank !== 0) return byRank;
    if (a.kind === 'volunteer' && b.kind === 'volunteer') {
      const byTrouble = trouble(b) - trouble(a);
      if (byTrouble !== 0) return byTrouble;
    }
    return (a.per_image_ms ?? Infinity) - (b.per_image_ms ?? Infinity) || a.id.localeCompare(b.id);
  });
}

export interface VolunteerSummary {
  connected: number;
  joining: number;
  byStanding: Record<VolunteerStanding, number>;
  /** Time per image of the trusted tabs: median and the fastest and slowest. */
  trustedSpeed: { median: number; fastest: number; slowest: number } | null;
  lateJobs: number;
  hedgesWon: number;
  hedgesLost: number;
}

export function summarizeVolunteers(executors: readonly ExecutorStatus[]): VolunteerSummary {
  const volunteers = executors.filter((e): e is VolunteerStatus => e.kind === 'volunteer' && e.state !== 'gone');
  const byStanding = Object.fromEntries(VOLUNTEER_STANDINGS.map((standing) => [standing, 0])) as Record<VolunteerStanding, number>;
  for (const volunteer of volunteers) if (volunteer.standing) byStanding[volunteer.standing]++;
  const speeds = volunteers
    .filter((v) => v.standing === 'trusted' && v.per_image_ms !== undefined)
    .map((v) => v.per_image_ms as number)
    .sort((a, b) => a - b);
  const sum = (pick: (v: VolunteerStatus) => number | undefined): number => volunteers.reduce((total, v) => total + (pick(v) ?? 0), 0);
  return {
    connected: volunteers.length,
    joining: volunteers.filter((v) => v.state === 'joining').length,
    byStanding,
    trustedSpeed: speeds.length > 0 ? { median: speeds[Math.floor((speeds.length - 1) / 2)], fastest: speeds[0], slowest: speeds[speeds.length - 1] } : null,
    lateJobs: sum((v) => v.late_jobs),
    hedgesWon: sum((v) => v.hedges_won),
    hedgesLost: sum((v) => v.hedges_lost),
  };
}

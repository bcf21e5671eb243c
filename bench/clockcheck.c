// SPDX-License-Identifier: GPL-2.0
/*
 * clockcheck: does CLOCK_MONOTONIC agree between CPUs?
 *
 *   clockcheck [-t SECONDS]
 *
 * Every record's timestamp is a ktime_get_ns() on the CPU that wrote it,
 * and the reader merges the CPUs' rings by timestamp; the benchmark boots
 * its guest with the TSC as the clocksource (see bench/run.sh), which is
 * right only if the TSCs of the vCPUs agree.  One thread per CPU, each
 * pinned, takes turns under a lock: read the clock, compare it with the
 * last value any thread read, store it.  A value older than the last one
 * is a warp: time going backwards from one CPU to another.  Runs for
 * SECONDS (default 1) and prints one JSON object:
 *   {"cpus":N,"samples":N,"cross_cpu":N,"warps":N,"max_warp_ns":N}
 * cross_cpu counts the turns that followed another CPU's.  Exits 1 when
 * there was a warp.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ns, samples, cross_cpu, warps, max_warp, deadline;
static int last_cpu = -1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
	int cpu = (int)(intptr_t)arg;
	cpu_set_t set;
	uint64_t t;
	int stop = 0;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		fprintf(stderr, "clockcheck: cannot run on CPU %d\n", cpu);
		exit(2);
	}
	while (!stop) {
		pthread_mutex_lock(&lock);
		t = now_ns();
		samples++;
		if (last_cpu >= 0 && last_cpu != cpu)
			cross_cpu++;
		if (t < last_ns) {
			warps++;
			if (last_ns - t > max_warp)
				max_warp = last_ns - t;
		} else {
			last_ns = t;
		}
		last_cpu = cpu;
		stop = t >= deadline;
		pthread_mutex_unlock(&lock);
		/* let the other CPUs take the lock between turns */
		sched_yield();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double secs = 1;
	pthread_t *th;
	int c, i;

	while ((c = getopt(argc, argv, "t:")) != -1) {
		switch (c) {
		case 't':
			secs = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: clockcheck [-t SECONDS]\n");
			return 2;
		}
	}
	if (ncpu < 1 || secs <= 0) {
		fprintf(stderr, "clockcheck: bad CPU count or time\n");
		return 2;
	}
	th = calloc((size_t)ncpu, sizeof(*th));
	if (!th)
		return 2;
	deadline = now_ns() + (uint64_t)(secs * 1e9);
	for (i = 0; i < ncpu; i++)
		if (pthread_create(&th[i], NULL, run, (void *)(intptr_t)i)) {
			fprintf(stderr, "clockcheck: pthread_create failed\n");
			return 2;
		}
	for (i = 0; i < ncpu; i++)
		pthread_join(th[i], NULL);
	free(th);
	printf("{\"cpus\":%ld,\"samples\":%llu,\"cross_cpu\":%llu,\"warps\":%llu,\"max_warp_ns\":%llu}\n",
	       ncpu, (unsigned long long)samples,
	       (unsigned long long)cross_cpu, (unsigned long long)warps,
	       (unsigned long long)max_warp);
	return warps ? 1 : 0;
}

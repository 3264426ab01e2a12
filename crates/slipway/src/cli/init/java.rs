//! Java projects: Maven (`pom.xml`, `mvn -B verify`, Surefire reports) and
//! Gradle (`build.gradle(.kts)`, `gradle test`, its JUnit XML). The wrapper
//! scripts (`mvnw`, `gradlew`) are preferred when the project has them.

use std::path::Path;

use super::plan::{Cache, Job, Plan, Report, Runnable, Step};

pub fn plan(dir: &Path) -> anyhow::Result<Option<Plan>> {
    if let Some(pom) = super::read(dir, "pom.xml")? {
        return Ok(Some(maven(dir, &pom)));
    }
    for file in ["build.gradle.kts", "build.gradle"] {
        if let Some(build) = super::read(dir, file)? {
            return Ok(Some(gradle(dir, file, &build)));
        }
    }
    Ok(None)
}

/// The text of the first `<tag>` directly in the project, not in a parent or plugin.
fn project_tag(pom: &str, tag: &str) -> Option<String> {
    // Cut the parent and build sections so their coordinates are not taken for the project's.
    let mut text = pom.to_string();
    for section in [
        "parent",
        "build",
        "dependencies",
        "dependencyManagement",
        "profiles",
    ] {
        let (open, close) = (format!("<{section}>"), format!("</{section}>"));
        while let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) {
            if b < a {
                break;
            }
            text.replace_range(a..b + close.len(), "");
        }
    }
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find('<')? + start;
    Some(text[start..end].trim().to_string())
}

fn maven(dir: &Path, pom: &str) -> Plan {
    let mvn = if dir.join("mvnw").is_file() {
        "./mvnw"
    } else {
        "mvn"
    };
    let artifact = project_tag(pom, "artifactId").unwrap_or_else(|| "(unnamed)".into());
    let mut plan = Plan {
        kind: "java",
        ..Plan::default()
    };
    plan.found.push(format!(
        "Java: Maven project `{artifact}` ({}).",
        if mvn == "mvn" {
            "mvn from PATH"
        } else {
            "its Maven wrapper"
        }
    ));
    plan.version_prefix = project_tag(pom, "version").and_then(|v| super::version_prefix(&v));
    let mut test = Job {
        steps: vec![Step::new(
            "verify",
            format!("{mvn} -B verify"),
            "Compiles, runs the unit tests (Surefire) and whatever the pom binds up to `verify`.",
        )],
        caches: vec![maven_cache()],
        ..Job::default()
    };
    test.reports.junit = Report::new(
        "target/surefire-reports/TEST-*.xml",
        "Surefire's JUnit XML, one file per test class.",
    );
    test.notes
        .push(coverage_note(pom.contains("jacoco-maven-plugin")));
    plan.test = test;
    if let Some((build, run)) = maven_runnable(pom, mvn, &artifact) {
        plan.build = Some(build);
        plan.run = Some(run);
    }
    plan
}

fn coverage_note(jacoco: bool) -> String {
    match jacoco {
        true => "JaCoCo is configured, but the gate reads LCOV and Cobertura, not JaCoCo's XML: \
                 convert target/site/jacoco/jacoco.xml to Cobertura (e.g. with the \
                 cover2cover script) and add it as `coverage:` with `new_coverage >= 80` to the gate."
            .into(),
        false => "No coverage: no JaCoCo plugin; with one writing Cobertura XML, add it as \
                  `coverage:` and `new_coverage >= 80` to the gate."
            .into(),
    }
}

fn maven_cache() -> Cache {
    Cache::new(
        "maven-{{ hash \"**/pom.xml\" }}",
        &["~/.m2/repository"],
        "Maven's local repository, in the job's home where Maven keeps it.",
    )
}

/// A Spring Boot application (its repackaged jar runs alone) or one whose exec
/// plugin names a main class.
fn maven_runnable(pom: &str, mvn: &str, artifact: &str) -> Option<(Job, Runnable)> {
    if pom.contains("spring-boot-maven-plugin") {
        let job = package_job(
            format!("{mvn} -B -DskipTests package"),
            vec![format!("target/{artifact}-*.jar")],
        );
        let run = Runnable {
            command: format!("exec java -Dserver.port=\"$PORT\" -jar target/{artifact}-*.jar"),
            why: "The pom has spring-boot-maven-plugin: the repackaged jar runs alone, on $PORT."
                .into(),
        };
        return Some((job, run));
    }
    if !pom.contains("exec-maven-plugin") {
        return None;
    }
    let main = tag_text(pom, "mainClass")?;
    let job = package_job(
        format!("{mvn} -B -DskipTests package dependency:copy-dependencies"),
        vec!["target/classes/**".into(), "target/dependency/**".into()],
    );
    let run = Runnable {
        command: format!("exec java -cp \"target/classes:target/dependency/*\" {main}"),
        why: format!(
            "The pom's exec-maven-plugin names `{main}`: it runs from the compiled classes and the copied dependencies."
        ),
    };
    Some((job, run))
}

/// The text of the first `<tag>` anywhere in the pom.
fn tag_text(pom: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = pom.find(&open)? + open.len();
    let end = pom[start..].find('<')? + start;
    Some(pom[start..end].trim().to_string()).filter(|t| !t.is_empty() && !t.contains('$'))
}

fn package_job(command: String, artifacts: Vec<String>) -> Job {
    Job {
        steps: vec![Step::new(
            "package",
            command,
            "What the environment runs; the tests passed already.",
        )],
        caches: vec![maven_cache()],
        artifacts,
        ..Job::default()
    }
}

fn gradle(dir: &Path, file: &str, build: &str) -> Plan {
    let gradle = if dir.join("gradlew").is_file() {
        "./gradlew"
    } else {
        "gradle"
    };
    let mut plan = Plan {
        kind: "java",
        ..Plan::default()
    };
    plan.found.push(format!(
        "Java: Gradle project ({file}, {}).",
        if gradle == "gradle" {
            "gradle from PATH"
        } else {
            "its Gradle wrapper"
        }
    ));
    let mut test = Job {
        steps: vec![Step::new(
            "test",
            format!("{gradle} --no-daemon test"),
            "Compiles and runs the tests; no daemon outlives the job.",
        )],
        caches: vec![Cache::new(
            "gradle-{{ hash \"**/*.gradle*\" \"**/gradle-wrapper.properties\" }}",
            &["~/.gradle/caches", "~/.gradle/wrapper"],
            "Gradle's dependency cache and wrapper distributions, in the job's home.",
        )],
        ..Job::default()
    };
    test.reports.junit = Report::new(
        "build/test-results/test/TEST-*.xml",
        "Gradle's JUnit XML for the `test` task.",
    );
    test.notes.push(coverage_note(build.contains("jacoco")));
    plan.test = test;
    if build.contains("org.springframework.boot") || build.contains("application") {
        plan.found.push(
            "It builds an application; no `dev` environment is written for Gradle yet: add one \
             running `./build/install/NAME/bin/NAME` from `gradle installDist`."
                .into(),
        );
    }
    plan
}
